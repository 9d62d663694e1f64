"""Real builds as MLflow runs and registry versions: the session's sqlite store, a store that
does not answer, a failed build. (The whole path on an ``mlflow server`` on loopback is in
test_lifecycle.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from nb2prod.builder.pipeline import build
from nb2prod.errors import GateFailed
from nb2prod.lifecycle import registry
from nb2prod.notebook.read import read
from tests.support import (
    BIN,
    CHECK,
    NOTEBOOKS,
    Built,
    free_port,
)

pytestmark = pytest.mark.e2e
CHURN = str(NOTEBOOKS / "churn.ipynb")


def nb2prod(*args: str, uri: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "250"}
    return subprocess.run(
        [str(BIN / "nb2prod"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def runs(uri: str, name: str) -> list[Any]:
    client = registry.connect(uri)
    return client.search_runs([client.get_experiment_by_name(name).experiment_id])


def manifest_artifact(uri: str, run_id: str, into: Path) -> dict[str, Any]:
    path = registry.connect(uri).download_artifacts(run_id, "nb2prod.json", str(into))
    return json.loads(Path(path).read_text())


def test_the_session_build_is_a_run_and_one_version_in_the_default_sqlite_store(
    churn: Built, tmp_path: Path
) -> None:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert churn.result.tracking["uri"] == uri and churn.result.tracking_off is None
    run = registry.connect(uri).get_run(churn.result.tracking["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params == churn.manifest["parameters"]
    assert run.data.metrics["roc_auc"] == pytest.approx(churn.result.metrics["roc_auc"])
    assert run.data.metrics["gate.roc_auc.value"] == pytest.approx(churn.result.metrics["roc_auc"])
    assert run.data.tags["gate.roc_auc"] == "passed >= 0.7"
    assert run.data.tags["nb2prod.property_gate"] == "passed"
    assert run.data.tags["bento_tag"] == churn.tag
    assert run.data.tags["notebook_sha256"] == churn.manifest["notebook_sha256"]
    assert run.data.tags["git_commit"] == (churn.manifest["git_commit"] or "")
    listed = {a.path for a in registry.connect(uri).list_artifacts(run.info.run_id)}
    assert {"notebook", "nb2prod.json", "tests"} <= listed
    tests = {a.path for a in registry.connect(uri).list_artifacts(run.info.run_id, "tests")}
    assert tests == {f"tests/{p.name}" for p in (churn.src / "tests").iterdir() if p.is_file()}
    assert manifest_artifact(uri, run.info.run_id, tmp_path) == churn.manifest
    (version,) = [v for v in registry.versions("churn") if v.bento_tag == churn.tag]
    assert version.run_id == run.info.run_id and version.status == "ready"
    assert version.passed_gates and version.metrics == churn.result.metrics


def test_an_unreachable_store_leaves_the_build_whole_with_one_sentence(
    churn: Built, tmp_path: Path
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    done = nb2prod(
        "build", CHURN, "--out", str(churn.result.bento_path.parent), uri=uri, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 120
    assert churn.tag in done.stdout and "tracked" not in done.stdout
    sentence = f"This build was not tracked: the MLflow store at {uri} does not answer"
    assert done.stderr.count(sentence) == 1, done.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_a_failed_build_is_a_failed_run_with_its_one_sentence(tmp_path: Path) -> None:
    notebook = CHECK / "gate_fails.ipynb"
    started = int(time.time() * 1000)
    with pytest.raises(GateFailed) as raised:
        build(notebook, out_dir=tmp_path)
    uri = os.environ["MLFLOW_TRACKING_URI"]
    found = [r for r in runs(uri, read(notebook).settings.name) if r.info.start_time >= started]
    (run,) = found
    assert run.info.status == "FAILED"
    assert run.data.tags["nb2prod.error"] == str(raised.value)
    assert run.data.tags["gate.accuracy"] == "failed >= 0.999"
    assert run.data.metrics["gate.accuracy.value"] == pytest.approx(raised.value.fields["value"])
