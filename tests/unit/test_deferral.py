"""Deferral to a person (``serving.defer_below``): the setting, the decision, the log, monitor."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from nb2prod.builder.lift import deferral
from nb2prod.cli import app
from nb2prod.errors import NotebookError
from nb2prod.monitoring.attach import attach
from nb2prod.monitoring.inputs import read_current
from nb2prod.notebook.check import check
from nb2prod.notebook.read import parse
from nb2prod.serving.runtime import deferred
from nb2prod.serving.sink import Sink
from tests.support import CHECK, churn_rows
from tests.unit.test_monitor_exit_codes import make, rows

runner = CliRunner()


def settings_of(serving: object) -> tuple:
    text = json.dumps({"cells": [], "metadata": {"nb2prod": {"serving": serving}}})
    notebook = parse(text, Path("churn.ipynb"))
    return notebook.settings, notebook.problems


def test_check_names_a_defer_below_out_of_range_in_one_sentence() -> None:
    (finding,) = check(CHECK / "defer_below_too_high.ipynb").findings
    assert (finding.code, finding.severity, finding.name) == (
        "bad-setting",
        "error",
        "nb2prod.serving",
    )
    assert finding.message == (
        "defer_below_too_high.ipynb: notebook setting nb2prod.serving.defer_below must be a "
        "number above 0 and at most 1 (the top class probability under which a row is deferred "
        "to a person), not 1.5."
    )


@pytest.mark.parametrize("value", [0, -0.2, 1.01, True, "0.7", None, [0.7], float("inf")])
def test_a_defer_below_that_is_no_probability_is_refused_and_dropped(value: object) -> None:
    settings, (problem,) = settings_of({"defer_below": value, "runtime": "python"})
    assert problem.key == "serving"
    assert "nb2prod.serving.defer_below must be a number above 0 and at most 1" in problem.message
    assert settings.defer_below is None  # the default stands in, as for every bad setting


@pytest.mark.parametrize("value", [1, 0.7, 1e-9])
def test_a_probability_is_kept(value: float) -> None:
    settings, problems = settings_of({"defer_below": value})
    assert (settings.defer_below, problems) == (value, ())
    assert settings.runtime == "auto"


def test_a_misspelt_key_is_pointed_at_defer_below() -> None:
    _, (problem,) = settings_of({"defer_belw": 0.7})
    assert "unknown key `defer_belw`; did you mean `defer_below`?" in problem.message


def training(classes: list, has_proba: bool) -> SimpleNamespace:
    return SimpleNamespace(classes=classes, has_proba=has_proba)


@pytest.mark.parametrize(
    ("classes", "has_proba", "what"),
    [([], False, "a regressor"), ([0, 1], False, "a classifier without predict_proba")],
)
def test_the_build_refuses_defer_below_without_class_probabilities(
    classes: list, has_proba: bool, what: str
) -> None:
    with pytest.raises(NotebookError) as raised:
        deferral("diabetes.ipynb", 0.7, training(classes, has_proba))
    assert str(raised.value) == (
        "diabetes.ipynb: notebook setting nb2prod.serving.defer_below needs a classifier's top "
        f"class probability, and the model is {what}: a point prediction has no sound measure "
        "of confidence to defer on; remove the setting."
    )


def test_a_classifier_keeps_its_threshold_and_no_setting_is_none() -> None:
    assert deferral("churn.ipynb", 1, training([0, 1], True)) == 1.0
    assert deferral("diabetes.ipynb", None, training([], False)) is None


def test_a_row_is_deferred_when_its_top_probability_is_under_the_threshold() -> None:
    proba = np.array([[0.9, 0.1], [0.35, 0.65], [0.3, 0.7]])
    three = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    assert deferred(proba, 0.7) == [False, True, False]  # 0.7 itself is not under 0.7
    assert deferred(three, 0.6) == [True, False]
    assert deferred(np.empty((0, 2)), 0.7) == []
    assert all(isinstance(f, bool) for f in deferred(proba, 0.7))


def write_logs(root: Path, batches: list[list[bool] | None], service: str = "churn") -> Path:
    frame = churn_rows(40, 3).drop(columns="churned").reset_index(drop=True)
    sink = Sink(str(root), 2**20, service, "v1")
    for i, flags in enumerate(batches):
        part = frame.iloc[i * 2 : i * 2 + 2].reset_index(drop=True)
        sink.log("predict", part, np.array([0, 1]), ["prediction"], deferred=flags)
    sink.close()
    return root / service


def test_the_log_line_carries_deferred_only_when_it_is_given(tmp_path: Path) -> None:
    folder = write_logs(tmp_path, [[True, False], None])
    first, second = (json.loads(x) for x in next(folder.glob("*.jsonl")).read_text().splitlines())
    assert first["deferred"] == [True, False]
    assert "deferred" not in second


def test_deferral_counts_only_the_rows_whose_lines_say(tmp_path: Path) -> None:
    # a log from before the setting (no field) beside one with it: the old rows say nothing
    folder = write_logs(tmp_path, [None, [True, False], [True, True], [False, False]])
    current = read_current(folder, "churn")
    assert len(current.frame) == 8
    assert current.deferral() == (6, 3)
    assert read_current(write_logs(tmp_path / "old", [None, None]), "churn").deferral() is None


def test_a_malformed_deferred_field_is_no_information(tmp_path: Path) -> None:
    folder = write_logs(tmp_path, [[True, False]])
    file = next(folder.glob("*.jsonl"))
    record = json.loads(file.read_text())
    bad = ([True], "yes", [1, 0])  # wrong length, not a list, not booleans
    with open(file, "a") as fh:
        fh.writelines(json.dumps(record | {"deferred": flags}) + "\n" for flags in bad)
    assert read_current(folder, "churn").deferral() == (2, 1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A hand-made toy build with serving.defer_below 0.6, and logs of its own predictions
    with one row in four deferred (from rows of the reference's distribution: no drift)."""
    root = tmp_path_factory.mktemp("toy")
    src, train, settings, manifest = make(root, rows(300, 0))
    attach(src, train, settings, manifest)
    manifest["serving"] = {"runtime": "python", "defer_below": 0.6}
    (src / "nb2prod.json").write_text(json.dumps(manifest))
    model = pickle.loads((root / "train" / "model.pkl").read_bytes())
    fresh = rows(200, 1)
    sink = Sink(str(root / "logs"), 2**20, "toy", "v1")
    for i in range(0, 200, 4):
        part = fresh.iloc[i : i + 4]
        sink.log(
            "predict", part, model.predict(part), ["prediction"], deferred=[True] + [False] * 3
        )
    sink.close()
    plain = Sink(str(root / "plain"), 2**20, "toy", "v1")
    for i in range(0, 200, 4):
        part = fresh.iloc[i : i + 4]
        plain.log("predict", part, model.predict(part), ["prediction"])
    plain.close()
    return root, root / "logs"


def monitor(*args: object) -> object:
    return runner.invoke(app, ["monitor", *map(str, args)])


def test_monitor_reports_the_deferral_rate_in_the_table_and_the_json(toy: tuple) -> None:
    root, logs = toy
    summary = root / "summary.json"
    result = monitor(root, "--current", logs, "--json", summary, "--max-defer-rate", 0.3)
    assert result.exit_code == 0, result.output
    assert "deferred to a person: 25.0% (50 of 200 rows, under 0.6; max 30.0%)" in result.output
    deferral = json.loads(summary.read_text())["deferral"]
    assert deferral == {
        "rate": 0.25,
        "rows": 200,
        "deferred": 50,
        "threshold": 0.3,
        "defer_below": 0.6,
        "exceeded": False,
    }


def test_max_defer_rate_exceeded_is_exit_1(toy: tuple) -> None:
    root, logs = toy
    result = monitor(root, "--current", logs, "--max-defer-rate", 0.2)
    assert result.exit_code == 1, result.output
    assert "too many" in result.output and "no drift" in result.output


def test_logs_without_flags_say_n_a_and_never_exceed(toy: tuple) -> None:
    root, _ = toy
    summary = root / "plain.json"
    result = monitor(root, "--current", root / "plain", "--max-defer-rate", 0, "--json", summary)
    assert result.exit_code == 0, result.output
    assert "deferred to a person: n/a" in result.output
    assert json.loads(summary.read_text())["deferral"]["rate"] is None


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_max_defer_rate_that_is_no_share_is_exit_2(toy: tuple, rate: float) -> None:
    root, logs = toy
    result = monitor(root, "--current", logs, "--max-defer-rate", rate)
    assert result.exit_code == 2, result.output
    assert "--max-defer-rate must be from 0 to 1" in result.output
