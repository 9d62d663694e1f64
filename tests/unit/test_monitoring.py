"""Monitoring without a build: drift settings, the reference sample, bad bentos."""

from __future__ import annotations

import json
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


# --- ID-like and free-text columns, the ignore setting, the default drift share ----------

PASSENGERS = Path(__file__).resolve().parent.parent / "fixtures" / "monitoring"


def passenger_roles(frame: pd.DataFrame) -> dict[str, str]:
    coded = {"Pclass", "Sex", "Embarked"}
    return {
        c: "categorical" if c in coded or frame[c].dtype == object else "numerical"
        for c in frame.columns
    }


def test_ids_and_free_text_are_told_from_features() -> None:
    from nb2prod.monitoring.columns import classify
    from tests.fixtures.monitoring.passengers import passengers

    frame = passengers(300, 1).sample(frac=1, random_state=0)  # shuffled, as a split leaves it
    found = {c: classify(c, frame[c], passenger_roles(frame)[c]) for c in frame.columns}
    kinds = {c: f.reason for c, f in found.items() if f is not None}
    assert kinds == {"PassengerId": "id-like", "Name": "free-text", "Ticket": "id-like"}
    assert found["Name"].detail == "295 distinct values in 300 rows, 4.0 words each"
    rng = np.random.default_rng(0)
    # a row number counting up, or a near-unique int named like an id, is an id
    assert classify("row", pd.Series(np.arange(100)), "numerical").reason == "id-like"
    named = pd.Series(rng.permutation(10**6)[:100])
    assert classify("customer_id", named, "numerical").reason == "id-like"
    # but unique amounts, a few repeated codes, floats and a tiny sample are features
    assert classify("income", named, "numerical") is None
    assert classify("zip", pd.Series(rng.integers(0, 50, 400)), "numerical") is None
    assert classify("score", pd.Series(rng.random(400)), "numerical") is None
    assert classify("city", pd.Series(rng.choice(["Oslo", "Bergen"], 400)), "categorical") is None
    assert classify("code", pd.Series([f"c{i}" for i in range(10)]), "categorical") is None
    long = pd.Series([" ".join(rng.choice(["good", "bad", "ok"], 12)) for _ in range(40)])
    assert classify("review", long, "categorical").reason == "free-text"


def test_detected_and_ignored_columns_are_left_out_with_the_reason() -> None:
    from tests.fixtures.monitoring.passengers import passengers

    frame = passengers(300, 2).drop(columns="Survived")
    preds = pd.DataFrame({"prediction": np.arange(300) % 2})
    roles = passenger_roles(frame)
    config = drift_config({"ignore": ["Fare"]}, roles, frame, preds, "classification", "nb")
    assert [(c["name"], c["reason"]) for c in config["left_out"]] == [
        ("PassengerId", "id-like"),
        ("Name", "free-text"),
        ("Ticket", "id-like"),
        ("Fare", "ignored"),
    ]
    compared = [c["name"] for c in config["columns"]]
    assert compared == ["Pclass", "Sex", "Age", "SibSp", "Parch", "Embarked"]
    assert config["inputs"] == list(frame.columns)  # still validated, still the model's input
    # a role or method the notebook gives a column keeps it in, as does a category set
    kept = drift_config(
        {"columns": {"Ticket": {"role": "categorical"}}},
        roles,
        frame,
        preds,
        "classification",
        "nb",
    )
    assert "Ticket" in [c["name"] for c in kept["columns"]]
    kept = drift_config({}, roles, frame, preds, "classification", "nb", {"Name"})
    assert [c["name"] for c in kept["left_out"]] == ["PassengerId", "Ticket"]


@pytest.mark.parametrize(
    ("ignore", "says"),
    [
        (["Tikcet"], "names `Tikcet`, which is not an input column (did you mean `Ticket`?)"),
        (["passengerid"], "(did you mean `PassengerId`?)"),
        ("Name", "must be a list of column names"),
    ],
)
def test_an_ignore_entry_that_is_no_input_column_fails_the_build(ignore: object, says: str) -> None:
    from tests.fixtures.monitoring.passengers import passengers

    frame = passengers(50, 3).drop(columns="Survived")
    preds = pd.DataFrame({"prediction": np.arange(50) % 2})
    with pytest.raises(NotebookError) as info:
        drift_config({"ignore": ignore}, passenger_roles(frame), frame, preds, "x", "titanic.ipynb")
    assert str(info.value).startswith("titanic.ipynb: notebook setting nb2prod.monitoring.ignore")
    assert says in str(info.value)


def test_the_default_drift_share_is_evidentlys_half() -> None:
    frame = churn_rows(200, 4).drop(columns="churned")
    preds = pd.DataFrame({"prediction": np.arange(200) % 2})
    config = drift_config({}, CHURN_ROLES, frame, preds, "classification", "nb")
    assert (config["drift_share"], config["drift_share_source"]) == (0.5, "evidently default")


def test_a_number_evidently_compares_as_categories_is_recorded_as_one() -> None:
    from evidently.cli.report import ReportConfig

    # a count with five values: Evidently's default is chi², which refuses numerical data
    frame = pd.DataFrame({"kids": np.arange(200) % 5, "x": np.linspace(0, 1, 200)})
    preds = pd.DataFrame({"prediction": np.arange(200) % 2})
    roles = {"kids": "numerical", "x": "numerical"}
    config = drift_config({}, roles, frame, preds, "classification", "nb")
    kids = config["columns"][0]
    assert (kids["method"], kids["role"]) == ("chisquare", "categorical")
    assert report_config(config).metrics  # and the saved report builds
    assert isinstance(report_config(config), ReportConfig)


def test_the_static_check_reads_the_input_columns_from_the_schema_cells() -> None:
    from nb2prod.monitoring.columns import schema_columns, static_ignore_problem
    from nb2prod.notebook.read import parse_content

    source = (
        "import pandera.pandas as pa\nfrom pandera.typing import Series\n\n"
        "class Base(pa.DataFrameModel):\n    PassengerId: Series[int]\n\n"
        "class Passenger(Base):\n    Name: Series[str]\n"
        '    ticket_no: Series[str] = pa.Field(alias="Ticket")\n'
        "    class Config:\n        strict = True\n"
    )
    assert schema_columns([source], "Passenger") == ["PassengerId", "Name", "Ticket"]
    assert schema_columns(["x = ("], "Passenger") is None
    assert schema_columns([source], "Nope") is None
    node = json.loads((PASSENGERS / "passengers.ipynb").read_text())
    node["metadata"]["nb2prod"]["monitoring"] = {"ignore": ["Nmae"]}
    nb = parse_content(node, PASSENGERS / "passengers.ipynb")
    problem = static_ignore_problem(nb, "Passenger", [c.source for c in nb.with_role("schema")])
    assert problem is not None and "`Nmae`" in problem and "did you mean `Name`" in problem
    node["metadata"]["nb2prod"]["monitoring"] = {"ignore": ["Name"]}
    nb = parse_content(node, PASSENGERS / "passengers.ipynb")
    assert (
        static_ignore_problem(nb, "Passenger", [c.source for c in nb.with_role("schema")]) is None
    )
