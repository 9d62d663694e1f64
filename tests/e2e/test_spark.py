"""End to end: ``nb2prod score --engine spark`` answers as the local engine, in local mode and
on a real standalone cluster (master and worker on 127.0.0.1, started from pyspark's own
``spark-class``); rejects name the rows a person can find.

One Spark session (``local[2]``) serves the module's in-process runs; the cluster run is the
real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nb2prod.batch.score import score
from tests.support import BIN, background, churn_rows, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's one local[2] session; run_spark uses it (master=None) and leaves it."""
    from nb2prod.batch.spark import session

    local = tmp_path_factory.mktemp("spark-local")
    os.environ["SPARK_LOCAL_DIRS"] = str(local)
    with session("local[2]", batch_rows=128) as active:
        yield active
    os.environ.pop("SPARK_LOCAL_DIRS", None)
    # spark.stop() ends the session, not the JVM py4j started: shut that down too, so the rest
    # of the suite does not carry it (about 800 MB)
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is not None:
        proc = getattr(gateway, "proc", None)  # the java process pyspark launched
        gateway.shutdown()
        SparkContext._gateway = SparkContext._jvm = None
        if proc is not None:
            proc.stdin.close()  # the gateway server exits when its stdin closes
            proc.wait(timeout=60)


def _split_into_files(frame: pd.DataFrame, folder: Path, at: int) -> Path:
    """``frame`` as two parquet files of a folder (rows [0, at) and [at, end))."""
    folder.mkdir()
    frame.iloc[:at].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[at:].to_parquet(folder / "part-1.parquet", index=False)
    return folder


def _both_engines(target: str, data: Path, tmp: Path, **options: Any) -> dict[str, Any]:
    runs = {}
    for engine in ("local", "spark"):
        out = tmp / f"{engine}.parquet"
        result = score(target, data, out, engine=engine, max_reject_rate=0.5, **options)
        runs[engine] = (result, pd.read_parquet(out), pd.read_parquet(result.rejects))
    return runs


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_local_mode_scores_churn_as_the_local_engine(churn: Any, spark: Any, tmp_path: Path):
    # Given churn rows with nulls where the schema allows them, in two files, and two bad rows,
    # one in each file
    rows = churn_rows(600, seed=41).drop(columns="churned")
    assert rows["monthly_charges"].isna().any() and rows["payment_method"].isna().any()
    rows.loc[10, "tenure_months"] = -5
    rows.loc[450, "contract"] = "weekly"
    data = _split_into_files(rows, tmp_path / "rows", at=300)

    # When both engines score them, with probabilities
    runs = _both_engines(churn.tag, data, tmp_path, proba=True, batch_rows=128)

    # Then every row is scored or rejected, and Spark's answers are the local engine's
    (_, local_out, local_rej), (result, out, rej) = runs["local"], runs["spark"]
    assert (result.rows_in, result.rows_scored, result.rows_rejected) == (600, 598, 2)
    assert list(out.columns) == list(local_out.columns)
    assert [c for c in out.columns if c.startswith("proba_")], "no probabilities"
    pd.testing.assert_frame_equal(_sorted(out), _sorted(local_out))
    assert (out["model_version"] == churn.manifest["version"]).all()
    # the rejects name the input rows (files in path order) with the service's failures
    assert rej["row"].tolist() == [10, 450]
    pd.testing.assert_frame_equal(rej, local_rej)
    failures = [json.loads(f) for f in rej["failures"]]
    assert failures[0][0]["column"] == "tenure_months" and failures[0][0]["value"] == -5
    assert failures[1][0]["column"] == "contract" and failures[1][0]["value"] == "weekly"


def test_local_mode_scores_diabetes_by_id_as_the_local_engine(
    diabetes: Any, spark: Any, tmp_path: Path
):
    # Given the diabetes reference rows with an id, a null where the schema refuses one and
    # a value out of range
    rows = diabetes.reference().reset_index(drop=True)
    rows.insert(0, "patient_id", np.arange(1000, 1000 + len(rows)))
    rows.loc[3, "bmi"] = 5.0
    rows.loc[len(rows) - 2, "age"] = np.nan
    data = _split_into_files(rows, tmp_path / "rows", at=len(rows) // 2)

    # When both engines score them, keeping only the id beside the prediction
    runs = _both_engines(diabetes.tag, data, tmp_path, id_column="patient_id")

    # Then the predictions by id are the local engine's, to the last bit
    (_, local_out, local_rej), (result, out, rej) = runs["local"], runs["spark"]
    assert result.rows_in == len(rows) == result.rows_scored + result.rows_rejected
    assert list(out.columns) == ["patient_id", "prediction", "model_version"]
    by_id = out.sort_values("patient_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(by_id, local_out.sort_values("patient_id").reset_index(drop=True))
    assert rej["patient_id"].tolist() == [1003, 1000 + len(rows) - 2]
    assert rej["row"].tolist() == [3, len(rows) - 2]
    pd.testing.assert_frame_equal(rej, local_rej)


def _spark_class() -> tuple[str, dict[str, str]]:
    import pyspark

    home = Path(pyspark.__file__).parent
    return str(home / "bin" / "spark-class"), {"SPARK_HOME": str(home)}


def _registered_workers(ui: str) -> int:
    import httpx

    try:
        return int(httpx.get(f"{ui}/json/", timeout=2).json().get("aliveworkers", 0))
    except (httpx.HTTPError, ValueError, TypeError):
        return 0


def test_a_standalone_cluster_scores_through_the_cli(churn: Any, tmp_path: Path):
    # Given a real standalone master and one worker on loopback, their files under tmp_path
    spark_class, home = _spark_class()
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **home,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(tmp_path / "local"),
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
        "PYSPARK_PYTHON": sys.executable,
    }
    master = f"spark://127.0.0.1:{port}"
    rows = churn_rows(400, seed=43).drop(columns="churned")
    rows.loc[123, "support_calls"] = -1
    data = tmp_path / "rows.parquet"
    rows.to_parquet(data, index=False)
    with ExitStack() as stack:
        stack.enter_context(
            background(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
                + ["--port", str(port), "--webui-port", str(ui)],
                f"http://127.0.0.1:{ui}/json/",
                tmp_path / "master.log",
                env,
            )
        )
        worker = [spark_class, "org.apache.spark.deploy.worker.Worker", master]
        worker += ["--host", "127.0.0.1", "--cores", "1", "--memory", "1g"]
        stack.enter_context(
            background(
                [*worker, "--webui-port", str(worker_ui)],
                f"http://127.0.0.1:{ui}/json/",
                tmp_path / "worker.log",
                env,
            )
        )
        deadline = time.monotonic() + 60
        while _registered_workers(f"http://127.0.0.1:{ui}") < 1:
            assert time.monotonic() < deadline, (tmp_path / "master.log").read_text()[-2000:]
            time.sleep(0.5)

        # When the real CLI scores on the cluster
        out = tmp_path / "spark.parquet"
        command = [str(BIN / "nb2prod"), "score", churn.tag, str(data), str(out)]
        command += ["--engine", "spark", "--master", master, "--max-reject-rate", "0.01"]
        done = subprocess.run(
            [*command, "--json"], env=env, capture_output=True, text=True, timeout=600, check=False
        )

    # Then it exits 0 with every row counted, and answers as the local engine
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_rejected"]) == (400, 399, 1)
    local = score(churn.tag, data, tmp_path / "local.parquet", max_reject_rate=0.01)
    assert local.rows_rejected == 1
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(out)), _sorted(pd.read_parquet(tmp_path / "local.parquet"))
    )
    rejected = pd.read_parquet(summary["rejects"])
    assert rejected["row"].tolist() == [123]
    assert json.loads(rejected["failures"][0])[0]["column"] == "support_calls"
    # the executors ran on the worker: its work dir holds the application
    assert any((tmp_path / "work").iterdir())
