"""Reading current data for ``nb2prod monitor``: log layouts, bad lines, colliding names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nb2prod.errors import MonitorError
from nb2prod.monitoring.inputs import read_current
from nb2prod.serving.sink import Sink
from tests.support import churn_rows

ROWS = churn_rows(20, 7).drop(columns="churned").reset_index(drop=True)


def line(inputs: dict, outputs: dict, **meta: object) -> str:
    head = {"request_id": "r", "timestamp": "t", "model_version": "v", "endpoint": "predict"}
    return json.dumps({**head, **meta, "inputs": inputs, "outputs": outputs}) + "\n"


def logs(root: Path, service: str = "churn", requests: int = 4) -> Path:
    sink = Sink(str(root), 2**20, service, "v")
    for i in range(requests):
        rows = ROWS.iloc[i * 2 : i * 2 + 2].reset_index(drop=True)
        sink.log("predict", rows, np.array([0, 1]), ["prediction"])
    sink.close()
    return root / service


def test_a_line_of_the_wrong_shape_or_bytes_is_skipped_and_counted(tmp_path: Path) -> None:
    folder = logs(tmp_path)
    own = min(folder.glob("churn-*.jsonl"))
    good = {"columns": ["a"], "data": [[1]]}
    with open(own, "ab") as fh:
        fh.write(b'{"inputs": {"columns": ["tenure_months"], "data": [[1]]}, "outputs": {}}\n')
        fh.write(line({"columns": ["a"], "data": [[1], [2]]}, good).encode())  # rows differ
        fh.write(line({"columns": ["a", "a"], "data": [[1, 2]]}, good).encode())  # same name
        fh.write(line({"columns": ["a"], "data": [[{"deep": 1}]]}, good).encode())  # no scalar
        fh.write(b"[1, 2, 3]\n")  # JSON, not an object
        fh.write(b'{"request_id": "caf\xe9"}\n')  # not UTF-8
        fh.write(b'{"request_id": "cut sh')  # cut short by a crash
    current = read_current(folder, "churn")
    assert len(current.frame) == 8
    assert current.notes == [
        (
            "skipped 7 unreadable log line(s): cut short, not UTF-8, not JSON, or not the "
            "shape a prediction log line has"
        )
    ]


def test_only_bad_lines_is_no_rows_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "churn-20260101T000000-1-00001.jsonl").write_bytes(b"\xff\xfe\n[]\n")
    with pytest.raises(MonitorError, match=r"has no rows \(skipped 2 unreadable"):
        read_current(tmp_path, "churn")


def test_an_input_column_named_like_a_log_field_keeps_its_values(tmp_path: Path) -> None:
    # Given logged inputs with columns named like nb2prod's own fields and outputs
    names = ["prediction", "request_id", "_timestamp", "proba_1"]
    inputs = {"columns": names, "data": [[0.25, "mine", "x", 7], [0.5, "also", "y", 8]]}
    outputs = {"columns": ["prediction"], "data": [[1], [0]]}
    (tmp_path / "churn-20260101T000000-1-00001.jsonl").write_text(line(inputs, outputs))
    # When it is read
    current = read_current(tmp_path, "churn")
    # Then the inputs are the inputs, and nb2prod's fields are apart from them
    assert list(current.frame.columns) == names
    assert current.frame["prediction"].tolist() == [0.25, 0.5]
    assert current.frame["request_id"].tolist() == ["mine", "also"]
    assert current.logged["prediction"].tolist() == [1, 0]
    assert current.logged["request_id"].tolist() == ["r", "r"]
    assert current.output("prediction", names).tolist() == [1, 0]
    assert current.output("proba_1", names) is None  # not logged: the input is no output


def test_a_shared_root_reads_this_services_files_in_both_layouts(tmp_path: Path) -> None:
    # Given this service's logs, another service's, and a flat file an older bento wrote
    logs(tmp_path, "churn", requests=4)
    logs(tmp_path, "churn-v2", requests=3)
    old = tmp_path / "churn-20250101T000000-1-00001.jsonl"
    old.write_text(
        line(
            {
                "columns": list(ROWS.columns),
                "data": json.loads(ROWS.head(1).to_json(orient="values")),
            },
            {"columns": ["prediction"], "data": [[1]]},
        )
    )
    (tmp_path / "churn-v2-20250101T000000-1-00001.jsonl").write_text(old.read_text())
    # Then the root gives this service's new and old files, and no other service's
    assert len(read_current(tmp_path, "churn").frame) == 8 + 1
    assert len(read_current(tmp_path / "churn", "churn").frame) == 8
    assert len(read_current(tmp_path, "churn-v2").frame) == 6 + 1
    # and a folder of copied files with other names is read whole
    window = tmp_path / "window"
    window.mkdir()
    (window / "monday.jsonl").write_text(old.read_text())
    assert len(read_current(window, "churn").frame) == 1
