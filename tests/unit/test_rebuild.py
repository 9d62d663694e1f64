"""nb2prod rebuild's comparison, notebook search and parameters, on manifests made here."""

from __future__ import annotations

import copy
import shutil
from typing import Any

import pytest

from nb2prod.builder.rebuild import (
    RebuildReport,
    compare,
    find_notebook,
    parameters,
    report_lines,
)
from nb2prod.errors import RebuildError
from tests.support import NOTEBOOKS

OLD: dict[str, Any] = {
    "name": "churn",
    "version": "aaaaaaaaaaaa",
    "tag": "churn:aaaaaaaaaaaa",
    "notebook": "churn.ipynb",
    "notebook_sha256": "1" * 64,
    "notebook_path": "/nowhere/churn.ipynb",
    "parameters": {"n_estimators": "150", "seed": "7", "data": "''"},
    "data": {"files": {"data/train.csv": "a" * 64, "/abs/lookup.parquet": "b" * 64}, "off": None},
    "packages": ["bentoml==1.4.40", "pandas==2.3.3", "scikit-learn==1.7.2"],
    "nb2prod_version": "0.9.0",
    "python": "3.11.7",
    "metrics": {"roc_auc": 0.84, "accuracy": 0.8},
    "reference": {"sha256": "c" * 64},
    "lifted_sha256": "d" * 64,
    "serving": {"runtime": "compiled"},
}


def rebuilt(**changes: Any) -> dict[str, Any]:
    new = copy.deepcopy(OLD)
    new.update(changes)
    return new


def texts(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [str(d) for d in compare(old, new)[0]]


def report(old: dict[str, Any], new: dict[str, Any]) -> RebuildReport:
    found, notes = compare(old, new)
    return RebuildReport(old["tag"], new["tag"], "churn.ipynb", found, notes)


def test_the_same_manifest_is_the_same_build() -> None:
    done = report(OLD, rebuilt(build_time="later", git_commit="other"))
    assert done.same and done.verdict == "same"
    assert report_lines(done)[0].startswith("same: churn:aaaaaaaaaaaa rebuilt from churn.ipynb")


def test_a_package_is_named_with_both_versions_added_and_removed() -> None:
    pins = ["bentoml==1.4.40", "pandas==2.2.0", "onnxruntime==1.20.0"]
    got = texts(OLD, rebuilt(packages=pins, version="bbbbbbbbbbbb", tag="churn:bbbbbbbbbbbb"))
    assert "package pandas: 2.3.3 -> 2.2.0" in got
    assert "package onnxruntime: (none) -> 1.20.0" in got
    assert "package scikit-learn: 1.7.2 -> (none)" in got
    assert "version churn: aaaaaaaaaaaa -> bbbbbbbbbbbb" in got
    assert report(OLD, rebuilt(packages=pins)).verdict == "changed"


def test_data_changed_missing_added_and_gone_are_told_apart() -> None:
    files = {"data/train.csv": "e" * 64, "data/new.csv": "f" * 64, "/abs/lookup.parquet": "absent"}
    got = texts(OLD, rebuilt(data={"files": files, "off": None}))
    assert "data data/train.csv: sha256 changed (aaaaaaaaaaaa... -> eeeeeeeeeeee...)" in got
    assert "data data/new.csv: read by the rebuild only (added)" in got
    assert "data /abs/lookup.parquet: gone" in got
    fewer = texts(OLD, rebuilt(data={"files": {"data/train.csv": "a" * 64}, "off": None}))
    assert fewer == ["data /abs/lookup.parquet: not read by the rebuild (missing)"]


def test_the_notebook_parameters_and_environment_are_named() -> None:
    new = rebuilt(
        notebook_sha256="2" * 64,
        parameters={"n_estimators": "60", "seed": "7", "rows": "10"},
        nb2prod_version="0.10.0",
    )
    got = texts(OLD, new)
    assert got[:5] == [
        "notebook churn.ipynb: sha256 111111111111... -> 222222222222...",
        "parameter data: '' -> (none)",
        "parameter n_estimators: 150 -> 60",
        "parameter rows: (none) -> 10",
        "environment nb2prod: 0.9.0 -> 0.10.0",
    ]


def test_metrics_alone_differing_is_called_nondeterminism() -> None:
    new = rebuilt(metrics={"roc_auc": 0.8377, "accuracy": 0.8}, version="cccccccccccc")
    done = report(OLD, new)
    assert [str(d) for d in done.differences] == [
        "metric roc_auc: 0.84 -> 0.8377",
        "version churn: aaaaaaaaaaaa -> cccccccccccc",
    ]
    assert done.verdict == "nondeterministic"
    assert "the training is not deterministic" in report_lines(done)[0]
    assert done.to_dict()["verdict"] == "nondeterministic"


def test_a_manifest_without_data_says_the_data_was_not_compared() -> None:
    old = {k: v for k, v in OLD.items() if k != "data"}
    found, notes = compare(old, rebuilt())
    assert found == []
    assert notes and "the data was not compared" in notes[0]
    off = rebuilt(data={"files": {}, "off": "its training run read from the network (x)"})
    found, notes = compare(off, off)
    assert found == [] and "read from the network" in notes[0]


def test_the_notebook_is_found_where_recorded_then_by_name(tmp_path, monkeypatch) -> None:
    notebook = tmp_path / "churn.ipynb"
    shutil.copy(NOTEBOOKS / "churn.ipynb", notebook)
    assert find_notebook({**OLD, "notebook_path": str(notebook)}) == notebook
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    (elsewhere / "churn.ipynb").write_text("{}")
    monkeypatch.chdir(elsewhere)  # recorded path gone: the name in the working directory
    assert find_notebook(OLD) == elsewhere / "churn.ipynb"
    given = tmp_path / "given.ipynb"
    given.write_text("{}")
    assert find_notebook(OLD, given) == given


def test_a_notebook_found_nowhere_is_one_sentence_naming_where_it_looked(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RebuildError) as caught:
        find_notebook(OLD)
    text = str(caught.value)
    assert text.startswith("Cannot rebuild churn:aaaaaaaaaaaa: its notebook churn.ipynb is not at")
    assert "/nowhere/churn.ipynb" in text and text.endswith("--notebook PATH.")
    with pytest.raises(RebuildError, match="--notebook .*missing.ipynb is not a file"):
        find_notebook(OLD, tmp_path / "missing.ipynb")


def test_parameters_are_read_back_for_the_names_the_notebook_sets() -> None:
    manifest = {"parameters": {"n_estimators": "150", "data": "''", "gone": "1", "seed": "Seed(7)"}}
    values, notes = parameters(manifest, NOTEBOOKS / "churn.ipynb")
    assert values == {"n_estimators": 150, "data": ""}
    assert notes == ["parameter seed was Seed(7), not a literal: the notebook's own is used"]


def test_a_build_manifest_records_the_data_relative_to_the_notebook(tmp_path) -> None:
    from nb2prod.builder.reads import Inputs, data_manifest

    inside = tmp_path / "data" / "train.csv"
    found = Inputs(files={str(inside): "a" * 64, "/etc/elsewhere.csv": "b" * 64})
    assert data_manifest(found, tmp_path) == {
        "files": {"/etc/elsewhere.csv": "b" * 64, "data/train.csv": "a" * 64},
        "off": None,
    }


def test_the_cli_says_in_one_sentence_when_the_notebook_is_gone(tmp_path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from nb2prod.cli import app

    (tmp_path / "build" / "src").mkdir(parents=True)
    (tmp_path / "build" / "src" / "nb2prod.json").write_text(json.dumps(OLD))
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["rebuild", str(tmp_path / "build")])
    assert done.exit_code == 1
    assert "error: Cannot rebuild churn:aaaaaaaaaaaa: its notebook churn.ipynb" in done.stderr
    assert done.stdout == ""
