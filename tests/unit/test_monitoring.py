"""Monitoring without a build: drift settings, the reference sample, bad bentos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nb2prod.cli import app
from nb2prod.errors import MonitorError, NotebookError
from nb2prod.monitoring.attach import _sample, drift_config, report_config
from tests.support import CHURN_ROLES, churn_rows

runner = CliRunner()


def test_reference_is_sampled_to_the_cap() -> None:
    reference = pd.DataFrame({"x": range(100)})
    predictions = pd.DataFrame({"prediction": [i * 10 for i in range(100)]})
    ref, pred = _sample(reference, predictions, 30)
    assert len(ref) == len(pred) == 30
    assert (pred["prediction"] == ref["x"] * 10).all()


def test_notebook_settings_choose_methods_and_thresholds() -> None:
    frame = churn_rows(400, 1).drop(columns="churned")
    preds = pd.DataFrame({"prediction": np.arange(400) % 2})
    settings = {
        "num_method": "psi",
        "threshold": 0.2,
        "drift_share": 0.5,
        "columns": {"tenure_months": {"method": "ks", "threshold": 0.01}},
    }
    config = drift_config(settings, CHURN_ROLES, frame, preds, "classification", "nb")
    by_name = {c["name"]: c for c in config["columns"]}
    assert (by_name["tenure_months"]["method"], by_name["tenure_months"]["threshold"]) == (
        "ks",
        0.01,
    )
    assert (by_name["support_calls"]["method"], by_name["support_calls"]["threshold"]) == (
        "psi",
        0.2,
    )
    assert by_name["contract"]["method_source"] == "evidently default"
    assert by_name["contract"]["method"] == "chisquare"  # Evidently's pick for <= 1000 rows
    assert config["drift_share"] == 0.5
    default = drift_config({}, CHURN_ROLES, frame, preds, "classification", "nb")
    assert default["drift_share"] == pytest.approx(0.2)  # one of five columns is enough


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"methd": "psi"}, "unknown key(s) methd"),
        ({"columns": {"contract": {"method": "wasserstein"}}}, "not an Evidently drift method"),
        ({"columns": {"nope": {"method": "psi"}}}, "`nope`, which is not an input column"),
        ({"drift_share": 2}, "drift_share must be a number"),
    ],
)
def test_bad_monitoring_settings_fail_the_build(settings: dict, says: str) -> None:
    frame = churn_rows(50, 2).drop(columns="churned")
    preds = pd.DataFrame({"prediction": np.arange(50) % 2})
    with pytest.raises(NotebookError, match="nb2prod.monitoring|drift method") as info:
        drift_config(settings, CHURN_ROLES, frame, preds, "classification", "churn.ipynb")
    assert says in str(info.value)


def test_unknown_bento_is_bad_input(tmp_path: Path) -> None:
    churn_rows(20, 1).to_parquet(tmp_path / "fresh.parquet")
    result = runner.invoke(
        app, ["monitor", "no-such-bento:v1", "--current", str(tmp_path / "fresh.parquet")]
    )
    assert result.exit_code == 2
    assert "No bento `no-such-bento:v1`" in result.stderr


def test_monitor_error_is_exit_code_2() -> None:
    assert MonitorError("x").exit_code == 2


def test_an_input_named_prediction_gets_the_model_output_its_own_column() -> None:
    from evidently.metrics import ValueDrift

    frame = churn_rows(50, 3).drop(columns="churned").assign(prediction=0.5)
    roles = {**CHURN_ROLES, "prediction": "numerical"}
    preds = pd.DataFrame({"prediction": np.arange(50) % 2})
    config = drift_config({}, roles, frame, preds, "classification", "nb")
    assert [c["name"] for c in config["columns"]][-1] == "prediction"  # the input
    assert config["prediction"]["name"] == "_prediction"  # the model output, apart
    drift = [m for m in report_config(config).metrics if isinstance(m, ValueDrift)]
    assert [m.column for m in drift] == ["_prediction"]
    plain = drift_config({}, CHURN_ROLES, frame, preds, "classification", "nb")
    assert plain["prediction"]["name"] == "prediction"  # as every bento had it
