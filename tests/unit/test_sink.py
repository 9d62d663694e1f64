"""The prediction-log sink every bento ships, in-process: what it writes ``monitor`` reads."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
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


def fill(sink: Sink, requests: int, rows: int = 50) -> None:
    """Log ``requests`` requests of ``rows`` rows each, and close the sink."""
    batch, preds = frame(rows), np.zeros(rows, dtype=int)
    for _ in range(requests):
        sink.log("predict", batch, preds, ["prediction"])
        if sink._queue.qsize() > 1000:
            sink.flush()
    sink.close()


def test_sink_writes_logs_that_monitor_reads(tmp_path: Path) -> None:
    sink = Sink(str(tmp_path / "logs"), 10 * 2**20, "churn", "v1")
    ids = [sink.log("predict", frame(3), np.array([0, 1, 0]), ["prediction"]) for _ in range(5)]
    sink.log("predict_proba", frame(2), np.array([[0.2, 0.8], [0.6, 0.4]]), ["proba_0", "proba_1"])
    sink.close()
    # the service's own directory under the root, private to this user
    folder = tmp_path / "logs" / "churn"
    assert sink.directory == folder and (folder.stat().st_mode & 0o777) == 0o700
    files = sorted(folder.glob("*.jsonl"))
    assert files and all(f.name.startswith("churn-") for f in files)
    assert all((f.stat().st_mode & 0o777) == 0o600 for f in files)
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert [x["request_id"] for x in lines[:5]] == ids and len(set(ids)) == 5
    assert {x["model_version"] for x in lines} == {"v1"}
    assert {x["service"] for x in lines} == {"churn"}
    assert set(LOG_META) <= set(lines[0])  # the fields monitor reads back
    # monitor takes the root or the service's directory
    for given in (tmp_path / "logs", folder):
        current = read_current(given, "churn")
        assert len(current.frame) == 17 and list(current.frame.columns) == list(CHURN_ROLES)
        logged = current.logged
        assert logged["prediction"].notna().sum() == 15 and logged["proba_1"].notna().sum() == 2
        assert set(LOG_META) <= set(logged.columns)
        assert current.notes == []


def test_sink_stays_under_its_size_cap(tmp_path: Path) -> None:
    cap = 256 * 1024
    sink = Sink(str(tmp_path), cap, "churn", "v")
    fill(sink, 400)  # ~2.6 MB of log lines
    files = list((tmp_path / "churn").glob("*.jsonl"))
    assert len(files) > 1
    assert sum(f.stat().st_size for f in files) <= cap + sink.file_bytes


def test_pruning_spares_other_services_and_other_files(tmp_path: Path) -> None:
    # Given a shared root holding another service's big log, in both layouts, and a file of
    # this service's directory that is not one of its logs
    flat = tmp_path / "churn-v2-20260101T000000-1-00001.jsonl"  # older bentos: flat in the root
    nested = tmp_path / "fraud" / "fraud-20260101T000000-1-00001.jsonl"
    nested.parent.mkdir()
    (tmp_path / "churn").mkdir(mode=0o700)
    notes = tmp_path / "churn" / "notes.jsonl"
    for path in (flat, nested, notes):
        path.write_bytes(b"x" * 2 * 2**20)
    # When this service logs with a cap far below their size
    sink = Sink(str(tmp_path), 128 * 1024, "churn", "v")
    fill(sink, 300)
    # Then it pruned only its own files
    assert sink.written == 300
    for path in (flat, nested, notes):
        assert path.stat().st_size == 2 * 2**20, path
    own = list((tmp_path / "churn").glob("churn-*.jsonl"))
    assert len(own) >= 1 and sum(f.stat().st_size for f in own) <= 128 * 1024 + sink.file_bytes


def test_a_planted_link_at_the_next_file_name_is_not_written_through(tmp_path: Path) -> None:
    # Given links planted at every name the sink could pick in the next minute
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    folder = tmp_path / "logs" / "churn"
    folder.mkdir(parents=True, mode=0o700)
    now = dt.datetime.now(dt.timezone.utc)
    for second in range(-2, 60):
        stamp = (now + dt.timedelta(seconds=second)).strftime("%Y%m%dT%H%M%S")
        (folder / f"churn-{stamp}-{os.getpid()}-00001.jsonl").symlink_to(target)
    # When it logs
    sink = Sink(str(tmp_path / "logs"), 2**20, "churn", "v")
    fill(sink, 3, rows=2)
    # Then the link's target is untouched and the lines went to a file of the sink's own
    assert target.read_text() == "precious\n"
    assert sink.written == 3
    real = [f for f in folder.iterdir() if not f.is_symlink()]
    assert len(real) == 1 and len(real[0].read_text().splitlines()) == 3


def test_a_symlinked_service_directory_turns_logging_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "churn").symlink_to(elsewhere, target_is_directory=True)
    sink = Sink(str(tmp_path / "logs"), 2**20, "churn", "v")
    with caplog.at_level(logging.WARNING, logger="nb2prod.sink"):
        fill(sink, 5, rows=2)
        assert sink.log("predict", frame(1), np.array([1]), ["prediction"]) is None  # off now
    assert list(elsewhere.iterdir()) == []
    assert sink.written == 0 and sink.off
    warnings = [r.getMessage() for r in caplog.records if r.name == "nb2prod.sink"]
    assert len(warnings) == 1 and "symbolic link" in warnings[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_service_directory_of_another_user_turns_logging_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "churn"
    folder.mkdir(mode=0o777)
    os.chown(folder, 4242, 4242)
    sink = Sink(str(tmp_path), 2**20, "churn", "v")
    with caplog.at_level(logging.WARNING, logger="nb2prod.sink"):
        fill(sink, 5, rows=2)
    assert list(folder.iterdir()) == [] and sink.written == 0 and sink.off
    warnings = [r.getMessage() for r in caplog.records if r.name == "nb2prod.sink"]
    assert len(warnings) == 1 and "user id 4242" in warnings[0]


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
    monkeypatch.setenv("NB2PROD_LOG_DIR", "/srv/logs")
    assert Sink.from_env("churn", "v", max_mb=64).directory == Path("/srv/logs/churn")
    monkeypatch.setenv("NB2PROD_LOG_MAX_MB", "2")
    assert Sink.from_env("churn", "v", max_mb=64).max_bytes == 2 * 2**20
