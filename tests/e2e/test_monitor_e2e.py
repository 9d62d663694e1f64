"""End to end: a served bento logs its requests, and ``nb2prod monitor`` reads the logs."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from nb2prod.cli import app
from tests.support import records, serve

pytestmark = pytest.mark.e2e
REQUESTS = 300
BIG = 2 * 2**20  # another service's log, bigger than this one's cap


def _logged_rows(folder: Path) -> int:
    rows = 0
    for file in folder.glob("*.jsonl"):
        for line in file.read_text().splitlines():
            try:
                rows += json.loads(line)["rows"]
            except ValueError:
                continue
    return rows


def _monitor(churn: Any, current: Path, out: Path, *more: str) -> Any:
    args = ["monitor", churn.tag, "--current", str(current), "--json", str(out), *more]
    return CliRunner().invoke(app, args)


def test_served_bento_logs_requests_that_monitor_reads(churn: Any, tmp_path: Path) -> None:
    import httpx

    # Given a log root shared with another service, whose logs outgrow this one's 1 MB cap
    root = tmp_path / "logs"
    others = [root / "fraud" / "fraud-20260101T000000-1-00001.jsonl"]
    others.append(root / "fraud-20260101T000000-1-00001.jsonl")  # as older bentos wrote it
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * BIG)
    reference = churn.reference().sample(n=900, random_state=5).reset_index(drop=True)
    bodies = [records(reference.iloc[i * 3 : i * 3 + 3]) for i in range(REQUESTS)]
    env = {"NB2PROD_LOG_DIR": str(root), "NB2PROD_LOG_MAX_MB": "1"}
    with serve(churn.tag, env=env) as base:
        with httpx.Client(base_url=base, timeout=60) as client:

            def call(i: int) -> int:
                route = "/predict_proba" if i % 10 == 0 else "/predict"
                for attempt in range(5):  # 5xx: the batcher shedding load on a busy machine
                    status = client.post(route, json={"rows": bodies[i]}).status_code
                    if status < 500:
                        break
                    time.sleep(0.5 * (attempt + 1))
                return status

            with ThreadPoolExecutor(max_workers=4) as pool:
                statuses = list(pool.map(call, range(REQUESTS)))
        assert statuses == [200] * REQUESTS
        deadline = time.monotonic() + 30
        while _logged_rows(root / "churn") < REQUESTS * 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    # Then its logs are in its own private directory, and the other service's are untouched
    folder = root / "churn"
    assert (folder.stat().st_mode & 0o777) == 0o700
    files = sorted(folder.glob("*.jsonl"))
    assert files and all((f.stat().st_mode & 0o777) == 0o600 for f in files)
    assert [p.stat().st_size for p in others] == [BIG, BIG]
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert len(lines) == REQUESTS
    assert len({x["request_id"] for x in lines}) == REQUESTS
    assert {x["model_version"] for x in lines} == {churn.manifest["version"]}
    assert {x["endpoint"] for x in lines} == {"predict", "predict_proba"}
    assert all(x["timestamp"].endswith("+00:00") for x in lines)

    # And monitor reads it from the root, with the lines an older bento wrote flat there
    text = files[0].read_text().splitlines(keepends=True)
    files[0].write_text("".join(text[10:]))
    (root / "churn-20250101T000000-1-00001.jsonl").write_text("".join(text[:10]))
    out = tmp_path / "summary.json"
    result = _monitor(churn, root, out, "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["rows"] == REQUESTS * 3
    assert summary["drifted_columns"] == []
    assert summary["prediction"] is not None
    assert summary["notes"] == []  # the other service's lines are not read (nor skipped)
    # or from the service's own directory
    rows = sum(x["rows"] for x in lines) - sum(json.loads(x)["rows"] for x in text[:10])
    assert _monitor(churn, folder, out).exit_code == 0
    assert json.loads(out.read_text())["rows"] == rows


@pytest.mark.parametrize("kind", ["unwritable", "symlinked"])
def test_a_log_dir_it_cannot_or_must_not_use_still_answers_200(
    kind: str, churn: Any, tmp_path: Path
) -> None:
    import httpx

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if kind == "unwritable":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a regular file, so nothing can be created below it (even as root)")
        root = blocker / "logs"
    else:  # the service's directory is a link planted to aim its log at other files
        root = tmp_path / "logs"
        root.mkdir()
        (root / "churn").symlink_to(elsewhere, target_is_directory=True)
    rows = churn.reference().head(20)
    expected = churn.notebook_predictions()["prediction"].head(20).tolist()
    with serve(churn.tag, env={"NB2PROD_LOG_DIR": str(root)}) as base:
        for _ in range(3):
            response = httpx.post(f"{base}/predict", json={"rows": records(rows)}, timeout=60)
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == expected
        single = httpx.post(f"{base}/predict", json={"rows": records(rows.head(1))}, timeout=60)
        assert single.status_code == 200
        assert np.array_equal(single.json()["predictions"], expected[:1])
        # the writer thread has had its turn once it has said why it writes nothing
        warning = "prediction log off" if kind == "symlinked" else "cannot write the prediction log"
        server_log = Path(os.environ["BENTOML_HOME"]) / f"serve-{base.rsplit(':', 1)[1]}.log"
        deadline = time.monotonic() + 30
        while warning not in server_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert warning in server_log.read_text()
    assert list(elsewhere.iterdir()) == []
    if kind == "unwritable":
        assert blocker.read_text().startswith("a regular file")
