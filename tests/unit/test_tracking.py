"""Each build and train is one MLflow run in a real sqlite store; tracking never fails a build."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from nb2prod.builder.pipeline import BuildResult
from nb2prod.builder.training import TrainingResult
from nb2prod.errors import GateFailed
from nb2prod.lifecycle import registry, tracking
from tests.support import NOTEBOOKS, ROOT, free_port

GATES = [{"metric": "roc_auc", "value": 0.83, "bound": ">= 0.7", "passed": True}]


def fake_build(
    root: Path, name: str, version: str, *, gate: bool = True, cached: bool = False
) -> BuildResult:
    """What a finished build leaves (manifest, executed notebook, generated tests), no kernel."""
    build_dir = root / f"{name}-{version}"
    src = build_dir / "src"
    (src / "tests").mkdir(parents=True, exist_ok=True)
    (src / "tests" / "test_properties.py").write_text("def test_no_crash():\n    pass\n")
    manifest = {
        "name": name,
        "tag": f"{name}:{version}",
        "version": version,
        "parameters": {"n_estimators": "150", "seed": "7"},
        "metrics": {"accuracy": 0.78, "roc_auc": 0.83},
        "gates": GATES,
        "notebook": f"{name}.ipynb",
        "notebook_sha256": "a5" * 32,
        "git_commit": "56cf1deac68e914dc288040d8ba2ecca6694eb63",
        "nb2prod_version": "0.1.0",
        "build_time": "2026-12-01T16:23:40+00:00",
        "properties": {"gate": gate},
    }
    (src / "nb2prod.json").write_text(json.dumps(manifest))
    (build_dir / "train").mkdir(exist_ok=True)
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (build_dir / "train" / "executed.ipynb").write_text(json.dumps(notebook))
    return BuildResult(
        tag=f"{name}:{version}",
        version=version,
        metrics=manifest["metrics"],
        bento_path=root / f"{name}-{version}.bento",
        build_dir=build_dir,
        gates=GATES,
        cached=cached,
    )


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def run_of(uri: str, run_id: str) -> Any:
    return registry.connect(uri).get_run(run_id)


def artifacts(uri: str, run_id: str) -> set[str]:
    client, found, todo = registry.connect(uri), set(), [None]
    while todo:
        for item in client.list_artifacts(run_id, todo.pop()):
            (todo.append(item.path) if item.is_dir else found.add(item.path))
    return found


def test_a_build_is_one_finished_run_with_params_metrics_gates_tags_and_artifacts(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a finished build of service `name`, in a working directory of its own
    monkeypatch.chdir(tmp_path)
    name = unique("svc")
    built = fake_build(tmp_path, name, "166f5a6638c3")
    # When it is tracked
    result = tracking.track_build(NOTEBOOKS / "churn.ipynb", {}, tmp_path, lambda: built)
    # Then the result names its run and registry version
    assert result is built and result.tracking_off is None
    assert result.tracking["experiment"] == name and result.tracking["uri"] == store
    assert result.tracking["version"] == 1 and result.tracking["cached"] is False
    run = run_of(store, result.tracking["run_id"])
    assert run.info.status == "FINISHED"
    assert registry.connect(store).get_experiment(run.info.experiment_id).name == name
    assert run.data.params == {"n_estimators": "150", "seed": "7"}
    assert run.data.metrics == {"accuracy": 0.78, "roc_auc": 0.83, "gate.roc_auc.value": 0.83}
    tags = run.data.tags
    assert tags["gate.roc_auc"] == "passed >= 0.7"
    assert tags["nb2prod.property_gate"] == "passed"
    assert tags["bento_tag"] == f"{name}:166f5a6638c3"
    assert tags["notebook_sha256"] == "a5" * 32
    assert tags["git_commit"] == "56cf1deac68e914dc288040d8ba2ecca6694eb63"
    assert tags["nb2prod_version"] == "0.1.0" and tags["nb2prod.registry_version"] == "1"
    assert artifacts(store, run.info.run_id) == {
        "notebook/executed.ipynb",
        "nb2prod.json",
        "tests/test_properties.py",
    }
    # And the artifacts sit next to the store, never in ./mlruns
    assert run.info.artifact_uri.startswith(Path(store.removeprefix("sqlite:///")).parent.as_uri())
    assert not (tmp_path / "mlruns").exists()
    # And the registry version is that bento, linked to that run
    (version,) = registry.versions(name)
    assert version.bento_tag == f"{name}:166f5a6638c3" and version.run_id == run.info.run_id
    assert version.metrics == {"accuracy": 0.78, "roc_auc": 0.83} and version.gates == GATES
    assert version.property_gate == "passed" and version.passed_gates
    assert version.build_time == "2026-12-01T16:23:40+00:00"


def test_a_cache_hit_records_no_second_run_and_names_the_run_that_made_the_bento(
    store: str, tmp_path: Path
) -> None:
    name = unique("svc")
    first = tracking.track_build("x", {}, tmp_path, lambda: fake_build(tmp_path, name, "aa01"))
    again = fake_build(tmp_path, name, "aa01", cached=True)
    tracking.track_build("x", {}, tmp_path, lambda: again)
    assert again.tracking == {**first.tracking, "cached": True}
    experiment = registry.connect(store).get_experiment_by_name(name)
    assert len(registry.connect(store).search_runs([experiment.experiment_id])) == 1
    assert [v.number for v in registry.versions(name)] == [1]


def test_a_cache_hit_this_store_never_saw_is_recorded_tagged_cached(
    store: str, tmp_path: Path
) -> None:
    name = unique("svc")
    built = fake_build(tmp_path, name, "bb02", cached=True)
    tracking.track_build("x", {}, tmp_path, lambda: built)
    assert run_of(store, built.tracking["run_id"]).data.tags["nb2prod.cached"] == "true"
    assert [v.bento_tag for v in registry.versions(name)] == [f"{name}:bb02"]


def test_a_build_without_the_property_gate_says_skipped_and_two_bentos_two_versions(
    store: str, tmp_path: Path
) -> None:
    name = unique("svc")
    tracking.track_build("x", {}, tmp_path, lambda: fake_build(tmp_path, name, "cc01"))
    built = fake_build(tmp_path, name, "cc02", gate=False)
    tracking.track_build("x", {}, tmp_path, lambda: built)
    assert run_of(store, built.tracking["run_id"]).data.tags["nb2prod.property_gate"] == "skipped"
    found = registry.versions(name)
    assert [(v.number, v.property_gate) for v in found] == [(1, "passed"), (2, "skipped")]
    assert not found[1].passed_gates


def test_a_failed_build_is_a_failed_run_with_its_sentence_and_failed_notebook(
    store: str, tmp_path: Path
) -> None:
    # Given a build of churn.ipynb whose gate fails, keeping its notebook as the build does
    (tmp_path / "churn.failed.ipynb").write_text('{"cells": [], "nbformat": 4}')
    error = GateFailed(
        "churn.ipynb: metric gate failed: roc_auc = 0.51, which is not >= 0.7.",
        metric="roc_auc",
        value=0.51,
        bound=">= 0.7",
    )

    def fails() -> BuildResult:
        raise error

    # When it is tracked, the build's own error comes out unchanged
    with pytest.raises(GateFailed) as raised:
        tracking.track_build(NOTEBOOKS / "churn.ipynb", {"n_rows": 200}, tmp_path, fails)
    assert raised.value is error
    # Then the churn experiment has a FAILED run that carries the sentence and the notebook
    client = registry.connect(store)
    experiment = client.get_experiment_by_name("churn")
    (run,) = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert run.data.tags["nb2prod.error"] == str(error)
    assert run.data.tags["nb2prod.error_class"] == "GateFailed"
    assert run.data.tags["gate.roc_auc"] == "failed >= 0.7"
    assert run.data.metrics == {"gate.roc_auc.value": 0.51}
    assert run.data.params == {"n_rows": "200"}
    assert artifacts(store, run.info.run_id) == {"notebook/churn.failed.ipynb"}


def test_an_unreachable_store_costs_seconds_and_one_warning_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    caplog.set_level(logging.WARNING, logger="nb2prod")
    built = fake_build(tmp_path, unique("svc"), "dd01")
    started = time.monotonic()
    result = tracking.track_build("x", {}, tmp_path, lambda: built)
    assert time.monotonic() - started < 10
    assert result.tracking is None
    assert result.tracking_off.startswith(f"This build was not tracked: the MLflow store at {uri}")
    assert result.to_dict()["tracking_off"] == result.tracking_off
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [result.tracking_off]


def test_a_training_run_is_tracked_without_a_registry_version(store: str, tmp_path: Path) -> None:
    executed = tmp_path / "executed.ipynb"
    executed.write_text('{"cells": [], "nbformat": 4}')
    training = TrainingResult(
        directory=tmp_path,
        executed=executed,
        params={"n_estimators": "60"},
        metrics={"roc_auc": 0.8},
        reference_rows=10,
        has_proba=True,
        model_module="sklearn",
        classes=[0, 1],
    )
    name = "diabetes"  # the experiment is the notebook's nb2prod.name
    tracking.track_train(NOTEBOOKS / "diabetes.ipynb", {}, lambda: training)
    client = registry.connect(store)
    (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["nb2prod.kind"] == "train"
    assert run.data.params == {"n_estimators": "60"} and run.data.metrics == {"roc_auc": 0.8}
    assert artifacts(store, run.info.run_id) == {"notebook/executed.ipynb"}
    assert client.search_registered_models(f"name = '{name}'") == []


def test_the_store_is_mlflow_tracking_uri_else_mlflow_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert registry.store_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert registry.store_uri() == "http://127.0.0.1:5000"


def test_the_lifecycle_modules_and_open_bento_import_no_mlflow() -> None:
    code = (
        "import sys, nb2prod.lifecycle.tracking, nb2prod.lifecycle.registry, "
        "nb2prod.lifecycle.show, nb2prod.bento.locate, nb2prod.notebook.check; "
        "assert 'mlflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
