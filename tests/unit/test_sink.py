"""The prediction-log sink every bento ships, in-process: what it writes ``monitor`` reads."""

from __future__ import annotations

import json
import logging
import queue
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2prod.monitoring.inputs import read_current
from nb2prod.serving.sink import LOG_META, Sink
from tests.support import CHURN_ROLES, churn_rows

ROWS = churn_rows(60, 3).drop(columns="churned")


def frame(n: int) -> pd.DataFrame:
    return ROWS.head(n).reset_index(drop=True)


def test_sink_writes_logs_that_monitor_reads(tmp_path: Path) -> None:
    sink = Sink(str(tmp_path / "logs"), 10 * 2**20, "churn", "v1")
    ids = [sink.log("predict", frame(3), np.array([0, 1, 0]), ["prediction"]) for _ in range(5)]
    sink.log("predict_proba", frame(2), np.array([[0.2, 0.8], [0.6, 0.4]]), ["proba_0", "proba_1"])
    sink.close()
    files = sorted((tmp_path / "logs").glob("*.jsonl"))
    assert files and all(f.name.startswith("churn-") for f in files)
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert [x["request_id"] for x in lines[:5]] == ids and len(set(ids)) == 5
    assert {x["model_version"] for x in lines} == {"v1"}
    assert {x["service"] for x in lines} == {"churn"}
    assert set(LOG_META) <= set(lines[0])  # the fields monitor reads back
    current = read_current(tmp_path / "logs", "churn")
    assert len(current) == 17
    assert current["prediction"].notna().sum() == 15 and current["proba_1"].notna().sum() == 2
    assert list(current.columns[:5]) == list(CHURN_ROLES)
    assert {f"_{k}" for k in LOG_META} <= set(current.columns)


def test_sink_stays_under_its_size_cap(tmp_path: Path) -> None:
    cap = 256 * 1024
    sink = Sink(str(tmp_path), cap, "churn", "v")
    rows, preds = frame(50), np.zeros(50, dtype=int)
    for _ in range(400):  # ~2.6 MB of log lines
        sink.log("predict", rows, preds, ["prediction"])
        if sink._queue.qsize() > 1000:
            sink.flush()
    sink.close()
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) > 1
    assert sum(f.stat().st_size for f in files) <= cap + sink.file_bytes


def test_unwritable_sink_never_raises_or_waits_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sink = Sink(str(blocker / "logs"), 2**20, "churn", "v")
    rows, preds = frame(1), np.array([1])
    with caplog.at_level(logging.WARNING, logger="nb2prod.sink"):
        took = []
        for _ in range(200):
            start = time.perf_counter()
            sink.log("predict", rows, preds, ["prediction"])
            took.append(time.perf_counter() - start)
        sink.flush()
        sink.close()
    assert sink.written == 0 and sink.dropped == 200
    assert len([r for r in caplog.records if r.name == "nb2prod.sink"]) == 1
    assert float(np.median(took)) < 1e-3  # a queue put, not a disk write


def test_full_queue_drops_instead_of_waiting(tmp_path: Path) -> None:
    sink = Sink(str(tmp_path), 2**20, "churn", "v")
    sink._queue = queue.Queue(maxsize=1)
    sink._thread = object()  # a stalled writer: nothing drains the queue
    rows, preds = frame(1), np.array([1])
    assert sink.log("predict", rows, preds, ["prediction"]) is not None
    assert sink.log("predict", rows, preds, ["prediction"]) is None
    assert sink.dropped == 1


def test_the_environment_sets_directory_and_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NB2PROD_LOG_DIR", "off")
    off = Sink.from_env("churn", "v", max_mb=512)
    assert off.directory is None
    assert off.log("predict", frame(1), np.array([1]), ["prediction"]) is None
    monkeypatch.delenv("NB2PROD_LOG_DIR")
    monkeypatch.delenv("NB2PROD_LOG_MAX_MB", raising=False)
    default = Sink.from_env("churn", "v", max_mb=64)
    assert default.directory == Path("~/.local/share/nb2prod/logs/churn").expanduser()
    assert default.max_bytes == 64 * 2**20  # the service's own default, from service.py
    monkeypatch.setenv("NB2PROD_LOG_MAX_MB", "2")
    assert Sink.from_env("churn", "v", max_mb=64).max_bytes == 2 * 2**20
