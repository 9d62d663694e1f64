"""End to end: a served bento logs its requests, and ``nb2prod monitor`` reads the logs."""

from __future__ import annotations

import json
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


def _logged_rows(folder: Path) -> int:
    rows = 0
    for file in folder.glob("*.jsonl"):
        for line in file.read_text().splitlines():
            try:
                rows += json.loads(line)["rows"]
            except ValueError:
                continue
    return rows


def test_served_bento_logs_requests_that_monitor_reads(churn: Any, tmp_path: Path) -> None:
    import httpx

    logs = tmp_path / "logs"
    reference = churn.reference().sample(n=900, random_state=5).reset_index(drop=True)
    bodies = [records(reference.iloc[i * 3 : i * 3 + 3]) for i in range(REQUESTS)]
    with serve(churn.tag, env={"NB2PROD_LOG_DIR": str(logs)}) as base:
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
        while _logged_rows(logs) < REQUESTS * 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    lines = [
        json.loads(x) for f in sorted(logs.glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    assert len(lines) == REQUESTS
    assert len({x["request_id"] for x in lines}) == REQUESTS
    assert {x["model_version"] for x in lines} == {churn.manifest["version"]}
    assert {x["endpoint"] for x in lines} == {"predict", "predict_proba"}
    assert all(x["timestamp"].endswith("+00:00") for x in lines)

    out = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            churn.tag,
            "--current",
            str(logs),
            "--json",
            str(out),
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["rows"] == REQUESTS * 3
    assert summary["drifted_columns"] == []
    assert summary["prediction"] is not None


def test_unwritable_log_dir_still_answers_200(churn: Any, tmp_path: Path) -> None:
    import httpx

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file, so nothing can be created below it (even as root)")
    rows = churn.reference().head(20)
    expected = churn.notebook_predictions()["prediction"].head(20).tolist()
    with serve(churn.tag, env={"NB2PROD_LOG_DIR": str(blocker / "logs")}) as base:
        for _ in range(3):
            response = httpx.post(f"{base}/predict", json={"rows": records(rows)}, timeout=60)
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == expected
        single = httpx.post(f"{base}/predict", json={"rows": records(rows.head(1))}, timeout=60)
        assert single.status_code == 200
        assert np.array_equal(single.json()["predictions"], expected[:1])
    assert blocker.read_text().startswith("a regular file")
