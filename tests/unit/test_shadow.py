"""lifecycle/shadow.py, comparison.py and shadow_show.py: the figures on frames made here, and
``shadow()`` on a bento lifted in-process against itself and against a planted regression."""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from nb2prod.bento.replay import Replayed
from nb2prod.cli import app
from nb2prod.errors import ShadowError
from nb2prod.lifecycle import comparison
from nb2prod.lifecycle.shadow import Thresholds, _checks, read_target, shadow
from nb2prod.lifecycle.shadow_show import print_shadow
from tests.support import CHECK, lift_in_process

runner = CliRunner()


def test_agreement_counts_flips_from_each_class_to_each_other() -> None:
    champion = pd.Series([0, 1, 1, 0, 2], index=[10, 11, 12, 13, 14])
    challenger = pd.Series([0, 1, 0, 0, 1], index=[10, 11, 12, 13, 14])
    found = comparison.agreement(champion, challenger)
    assert found["agreement"] == 0.6 and found["flipped"] == 2 and found["rows"] == 5
    assert found["labels"] == [0, 1, 2]
    assert found["matrix"] == [[2, 0, 0], [1, 1, 0], [0, 1, 0]]  # rows: the champion's class


def test_differences_describe_a_regressors_shift() -> None:
    found = comparison.differences(pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series([1.0, 2.0, 4.0, 8.0]))
    assert found["mean_diff"] == 1.25 and found["mean_abs_diff"] == 1.25
    assert found["p50_abs_diff"] == 0.5 and found["max_abs_diff"] == 4.0
    assert found["p90_abs_diff"] == pytest.approx(3.1)  # between 1 and 4, 0.7 of the way
    assert found["champion_std"] == pytest.approx(np.std([1, 2, 3, 4]))


def test_metrics_of_a_classifier_and_a_regressor() -> None:
    y = pd.Series([0, 1, 1, 0])
    predictions = pd.DataFrame(
        {
            "prediction": [0, 1, 0, 0],
            "proba_0": [0.9, 0.1, 0.6, 0.8],
            "proba_1": [0.1, 0.9, 0.4, 0.2],
        }
    )
    found = comparison.model_metrics(
        "classification", y, predictions, ["proba_0", "proba_1"], [0, 1]
    )
    assert found == {"accuracy": 0.75, "roc_auc": 1.0}
    one_class = comparison.model_metrics(
        "classification", pd.Series([1, 1, 1, 1]), predictions, ["proba_0", "proba_1"], [0, 1]
    )
    assert one_class["roc_auc"] is None and one_class["accuracy"] == 0.25
    regression = comparison.model_metrics(
        "regression", pd.Series([1.0, 2.0, 3.0]), pd.DataFrame({"prediction": [1, 2, 5]}), [], None
    )
    assert regression["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert regression["mae"] == pytest.approx(2 / 3) and regression["r2"] == pytest.approx(-1.0)
    diff = comparison.metric_differences({"rmse": 2.0, "r2": None}, {"rmse": 1.5, "r2": 0.3})
    assert diff == {"rmse": -0.5, "r2": None}


def test_evidently_sees_a_shifted_prediction_distribution_and_not_an_equal_one() -> None:
    rng = np.random.default_rng(0)
    champion = pd.Series(rng.integers(0, 2, 400))
    same, _ = comparison.prediction_drift(champion, champion.copy(), "classification")
    shifted, snapshot = comparison.prediction_drift(
        champion, pd.Series(np.zeros(400, dtype=int)), "classification"
    )
    assert same["drifted"] is False and shifted["drifted"] is True
    assert shifted["kind"] == "categorical" and snapshot is not None
    numbers, _ = comparison.prediction_drift(
        pd.Series(rng.normal(size=300)), pd.Series(rng.normal(3, 1, size=300)), "regression"
    )
    assert numbers["kind"] == "numerical" and numbers["drifted"] is True


def _replayed(predictions: list, rejects: int = 0, task: str = "classification") -> Replayed:
    rows = len(predictions) + rejects
    return Replayed(
        tag="t:1",
        model_version="1",
        name="t",
        rows=rows,
        predictions=pd.DataFrame({"prediction": predictions}, index=range(rejects, rows)),
        rejects=[{"row": i, "status": 422, "failures": []} for i in range(rejects)],
        latency={"p50_ms": 1.0},
        batch={},
        input_columns=["x"],
        task=task,
    )


def test_thresholds_decide_each_check() -> None:
    a, b = _replayed([0] * 10), _replayed([0] * 8 + [1] * 2, rejects=1)
    figures = {
        "agreement": comparison.agreement(a.predictions["prediction"], b.predictions["prediction"]),
        "differences": None,
        "drift": {"drifted": True, "score": 0.01, "method": "Z-test p_value", "threshold": 0.05},
    }
    checks = {c.name: c for c in _checks(figures, a, b, Thresholds())}
    assert checks["agreement"].value == 0.8 and not checks["agreement"].passed
    assert checks["extra_rejects"].value == 1 and not checks["extra_rejects"].passed
    assert not checks["prediction_drift"].passed
    lenient = Thresholds(min_agreement=0.8, max_extra_rejects=1, prediction_drift=False)
    checks = _checks(figures, a, b, lenient)
    assert [c.name for c in checks] == ["agreement", "extra_rejects"]
    assert all(c.passed for c in checks)
    # a regressor's default bound is a tenth of the champion's prediction spread
    a, b = _replayed([0.0, 2.0], task="regression"), _replayed([0.05, 2.05], task="regression")
    regression = {
        "agreement": None,
        "differences": comparison.differences(
            a.predictions["prediction"], b.predictions["prediction"]
        ),
        "drift": {"drifted": None},
    }
    (diff, _) = _checks(regression, a, b, Thresholds())
    assert diff.name == "mean_abs_diff" and diff.bound == "<= 0.1" and diff.passed
    (diff, _) = _checks(regression, a, b, Thresholds(max_mean_abs_diff=0.01))
    assert not diff.passed


def test_outcomes_are_row_for_row_with_the_traffic(tmp_path: Path) -> None:
    traffic = pd.DataFrame({"x": [1, 2, 3], "churned": [0, 1, 0]})
    assert read_target(None, "churned", traffic).tolist() == [0, 1, 0]
    assert read_target(None, None, traffic) is None
    pd.DataFrame({"y": [1, 0, 1]}).to_csv(tmp_path / "y.csv", index=False)
    assert read_target(tmp_path / "y.csv", None, traffic).tolist() == [1, 0, 1]
    pd.DataFrame({"y": [1, 0], "z": [0, 0]}).to_parquet(tmp_path / "two.parquet")
    with pytest.raises(ShadowError, match="2 columns: name one"):
        read_target(tmp_path / "two.parquet", None, traffic)
    with pytest.raises(ShadowError, match="2 rows and the traffic 3"):
        read_target(tmp_path / "two.parquet", "y", traffic)
    with pytest.raises(ShadowError, match="no column `gone`"):
        read_target(None, "gone", traffic)


@pytest.fixture(scope="module")
def bentos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """The `clean` classifier lifted in-process, a copy whose model always says 0, and rows
    with their true outcomes (the fixture's own rule)."""
    from sklearn.dummy import DummyClassifier

    root = tmp_path_factory.mktemp("shadow")
    champion = root / "clean-work"
    lift_in_process(CHECK / "clean.ipynb", champion)
    planted = root / "constant-work"
    shutil.copytree(champion, planted)
    reference = pd.read_parquet(champion / "train" / "reference.parquet")
    features = pd.DataFrame({"x": reference["x"], "is_red": (reference["color"] == "red")})
    constant = DummyClassifier(strategy="constant", constant=0).fit(features, [0, 1] * 100)
    (planted / "train" / "model.pkl").write_bytes(pickle.dumps(constant))
    for compiled in (planted / "train").glob("model.*"):  # its ONNX would still serve
        if compiled.suffix != ".pkl":
            compiled.unlink()
    manifest = json.loads((planted / "src" / "nb2prod.json").read_text())
    manifest["serving"]["runtime"] = "python"
    (planted / "src" / "nb2prod.json").write_text(json.dumps(manifest))
    rows = reference.head(120).reset_index(drop=True)
    rows["y"] = ((rows["x"] > 0) ^ (rows["color"] == "red")).astype(int)
    return champion, planted, rows


def test_a_bento_against_itself_agrees_on_every_row(bentos: tuple, tmp_path: Path) -> None:
    champion, _, rows = bentos
    rows.to_csv(tmp_path / "traffic.csv", index=False)
    out = tmp_path / "report.json"
    report = shadow(
        champion,
        champion,
        tmp_path / "traffic.csv",
        target_column="y",
        json_out=out,
        html=tmp_path / "report.html",
        latency_rows=5,
    )
    assert report.passed and report.exit_code == 0
    assert report.agreement["agreement"] == 1.0 and report.compared == 120
    assert report.metrics["champion"] == report.metrics["challenger"]
    assert report.metrics["difference"] == {"accuracy": 0.0, "roc_auc": 0.0}
    assert json.loads(out.read_text())["passed"] is True
    page = (tmp_path / "report.html").read_text()
    assert "Class flips" in page and "<iframe srcdoc=" in page


def test_a_planted_regression_fails_and_the_report_says_why(bentos: tuple, tmp_path: Path) -> None:
    champion, planted, rows = bentos
    bad = rows.copy()
    bad.loc[3, "x"] = 500.0  # past the schema's 100: both reject it
    bad[["x", "color"]].to_parquet(tmp_path / "traffic.parquet")
    bad[["y"]].to_csv(tmp_path / "outcomes.csv", index=False)
    report = shadow(
        champion, planted, tmp_path / "traffic.parquet", tmp_path / "outcomes.csv", latency_rows=5
    )
    assert report.exit_code == 1
    # with outcomes the quality decides: the planted model is worse on both metrics
    failed = {c.name for c in report.checks if not c.passed}
    assert failed == {"accuracy", "roc_auc"}
    blind = shadow(champion, planted, tmp_path / "traffic.parquet", latency_rows=5)
    assert {c.name for c in blind.checks if not c.passed} == {"agreement", "prediction_drift"}
    assert report.champion["rejects"]["count"] == report.challenger["rejects"]["count"] == 1
    assert report.challenger["rejects"]["examples"][0]["row"] == 3
    assert report.metrics["rows"] == 119
    assert report.metrics["difference"]["accuracy"] < -0.2
    console = Console(record=True, width=120)
    print_shadow(console, report)
    text = console.export_text()
    assert "failed: accuracy, roc_auc" in text and "rejects row 3: x" in text
    # A margin as wide as the drop lets it pass, through the command line
    drop = -min(report.metrics["difference"].values()) + 0.01
    args = ["shadow", str(champion), str(planted), "--traffic", str(tmp_path / "traffic.parquet")]
    wide = runner.invoke(
        app, [*args, "--target", str(tmp_path / "outcomes.csv"), "--max-metric-drop", str(drop)]
    )
    assert wide.exit_code == 0, wide.output


def test_bentos_that_take_other_inputs_are_bad_input(bentos: tuple, tmp_path: Path) -> None:
    champion, _, rows = bentos
    other = tmp_path / "other-work"
    shutil.copytree(champion, other)
    service = other / "src" / "service.py"
    service.write_text(service.read_text().replace('["x", "color"]', '["x", "color", "size"]'))
    rows.to_csv(tmp_path / "traffic.csv", index=False)
    result = runner.invoke(
        app, ["shadow", str(champion), str(other), "--traffic", str(tmp_path / "traffic.csv")]
    )
    assert result.exit_code == 2
    assert "take different inputs (column(s) size in one only)" in result.output


def test_missing_traffic_and_missing_bentos_exit_2(bentos: tuple, tmp_path: Path) -> None:
    champion, _, _ = bentos
    missing = runner.invoke(
        app, ["shadow", str(champion), str(champion), "--traffic", str(tmp_path / "no.csv")]
    )
    assert (
        missing.exit_code == 2
        and "Traffic" in missing.output
        and "does not exist" in missing.output
    )
    gone = runner.invoke(app, ["shadow", str(tmp_path), str(champion), "--traffic", "x.csv"])
    assert gone.exit_code == 2 and "The champion:" in gone.output
