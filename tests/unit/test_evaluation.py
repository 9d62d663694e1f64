"""Metric values by name on evaluation rows: the promotion score, slice and fairness gates,
and the reference side of ``nb2prod monitor --target``'s quality."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2prod.builder import evaluation as ev
from nb2prod.errors import EvaluationError, GateFailed
from nb2prod.monitoring.quality import evaluation_outcomes, quality
from nb2prod.notebook.gates import METRICS, check_gates, parse_gate


def test_classifier_metrics_by_name_on_labels_and_probabilities() -> None:
    y, pred = [1, 0, 1, 1], [1, 0, 0, 1]
    positive = [0.9, 0.2, 0.4, 0.8]
    assert ev.metric_value("accuracy", y, pred) == 0.75
    assert ev.metric_value("accuracy_score", y, pred) == 0.75  # scikit-learn's name
    assert ev.metric_value("precision", y, pred, classes=[0, 1]) == 1.0
    assert ev.metric_value("recall", y, pred, classes=[0, 1]) == pytest.approx(2 / 3)
    assert ev.metric_value("f1", y, pred, classes=[0, 1]) == pytest.approx(0.8)
    assert ev.metric_value("balanced_accuracy", y, pred) == pytest.approx((1 + 2 / 3) / 2)
    # every positive scores above every negative
    assert ev.metric_value("roc_auc", y, pred, positive) == 1.0
    assert (
        ev.metric_value("auc", y, pred, np.column_stack([1 - np.array(positive), positive])) == 1.0
    )
    expected = -np.mean(np.log([0.9, 0.8, 0.4, 0.8]))
    assert ev.metric_value("log_loss", y, pred, positive, [0, 1]) == pytest.approx(expected)


def test_the_positive_class_is_the_second_of_the_models_classes() -> None:
    y = np.array(["no", "yes", "yes", "no"])
    pred = np.array(["no", "yes", "no", "no"])
    assert ev.metric_value("recall", y, pred, classes=["no", "yes"]) == 0.5
    assert ev.metric_value("precision", y, pred, classes=["no", "yes"]) == 1.0
    assert ev.metric_value("roc_auc", y, pred, [0.1, 0.7, 0.6, 0.65], ["no", "yes"]) == 0.75


def test_multiclass_roc_auc_is_one_vs_rest_and_f1_a_macro_average() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    assert ev.metric_value("roc_auc", y, y, proba, [0, 1, 2]) == 1.0
    assert ev.metric_value("f1", y, [0, 1, 2, 0, 1, 0], classes=[0, 1, 2]) == pytest.approx(
        (0.8 + 1.0 + 2 / 3) / 3
    )


def test_regressor_metrics_by_name() -> None:
    y, pred = [1.0, 2.0, 3.0], [1.0, 2.0, 5.0]
    assert ev.metric_value("mae", y, pred) == pytest.approx(2 / 3)
    assert ev.metric_value("mean_absolute_error", y, pred) == pytest.approx(2 / 3)
    assert ev.metric_value("mse", y, pred) == pytest.approx(4 / 3)
    assert ev.metric_value("rmse", y, pred) == pytest.approx(math.sqrt(4 / 3))
    assert ev.metric_value("r2", y, pred) == pytest.approx(1 - 4 / 2)
    assert ev.metric_value("r2_score", y, y) == 1.0


def test_the_example_notebooks_metric_names_are_known() -> None:
    # churn computes roc_auc and accuracy, diabetes r2 and mae: promotion scores them by name
    for name in ("roc_auc", "accuracy", "r2", "mae"):
        assert name in METRICS


@pytest.mark.parametrize(
    ("call", "says", "undefined"),
    [
        (lambda: ev.metric_value("roc_acu", [1], [1]), "did you mean `roc_auc`?", False),
        (
            lambda: ev.metric_value("roc_auc", [0, 1], [0, 1]),
            "needs the model's probabilities",
            False,
        ),
        (
            lambda: ev.metric_value("roc_auc", [1, 1], [1, 0], [0.9, 0.2]),
            "roc_auc is undefined on 2 rows of one class (1).",
            True,
        ),
        (lambda: ev.metric_value("accuracy", [], []), "undefined on no rows", False),
        (lambda: ev.metric_value("r2", [1.0], [1.0]), "r2 is undefined on one row.", True),
    ],
)
def test_a_metric_that_cannot_be_computed_says_why(call, says: str, undefined: bool) -> None:
    with pytest.raises(EvaluationError, match=re.escape(says)) as info:
        call()
    assert bool(info.value.fields.get("undefined")) is undefined


def frame(
    groups: list, y: list, pred: list, positive: list | None = None, column: str = "gender"
) -> pd.DataFrame:
    out = pd.DataFrame({column: groups, "income": np.arange(len(y), dtype=float)})
    out[ev.TARGET], out[ev.PREDICTION] = y, pred
    if positive is not None:
        out[ev.proba_column(0)] = 1 - np.asarray(positive, dtype=float)
        out[ev.proba_column(1)] = positive
    return out


def test_a_slice_gate_scores_each_value_and_skips_a_one_class_slice() -> None:
    rows = frame(
        ["a", "a", "a", "a", "b", "b", None, None],
        [1, 0, 1, 0, 1, 1, 1, 0],
        [1, 0, 0, 0, 1, 1, 1, 0],
        [0.9, 0.1, 0.6, 0.7, 0.8, 0.9, 0.3, 0.6],
    )
    found = ev.gate_values(parse_gate("roc_auc[gender]", ">= 0.5"), rows, [0, 1])
    assert found == [
        {"slice": "a", "rows": 4, "note": None, "value": 0.75},
        {
            "slice": "b",
            "rows": 2,
            "note": "roc_auc is undefined on 2 rows of one class (1).",
            "value": None,
        },
        {"slice": None, "rows": 2, "note": None, "value": 0.0},
    ]
    with pytest.raises(GateFailed, match=r"roc_auc on gender = missing is 0, which is not >= 0.5"):
        check_gates({"roc_auc[gender]": ">= 0.5"}, {}, "n.ipynb", lambda g: found)


def test_fairness_gates_are_fairlearns_on_the_positive_class() -> None:
    # selection rates: group a 3/4, group b 1/4
    rows = frame(
        ["a"] * 4 + ["b"] * 4,
        ["no", "yes", "yes", "yes", "yes", "no", "no", "yes"],
        ["yes", "yes", "yes", "no", "yes", "no", "no", "no"],
    )
    classes = ["no", "yes"]
    dp = ev.gate_values(
        parse_gate("demographic_parity_difference[gender]", "<= 0.1"), rows, classes
    )
    assert dp == [{"slice": None, "value": 0.5, "rows": 8, "groups": 2, "note": None}]
    ratio = ev.gate_values(parse_gate("demographic_parity_ratio[gender]", ">= 0.8"), rows, classes)
    assert ratio[0]["value"] == pytest.approx(1 / 3)
    # true positive rates a 2/3, b 1/2; false positive rates a 1/1, b 0/2
    eo = ev.gate_values(parse_gate("equalized_odds_difference[gender]", "<= 0.1"), rows, classes)
    assert eo[0]["value"] == 1.0
    # accuracy: a 2/4, b 3/4 (MetricFrame.difference and .ratio)
    acc = ev.gate_values(parse_gate("accuracy_difference[gender]", "<= 0.1"), rows, classes)
    assert acc[0]["value"] == pytest.approx(0.25)
    acc = ev.gate_values(parse_gate("accuracy_ratio[gender]", ">= 0.9"), rows, classes)
    assert acc[0]["value"] == pytest.approx(2 / 3)


def test_a_group_gate_on_probabilities_uses_each_groups_rows() -> None:
    rows = frame(
        ["a", "a", "a", "a", "b", "b", "b", "b"],
        [1, 0, 1, 0, 1, 0, 1, 0],
        [1, 0, 1, 0, 1, 0, 0, 1],
        [0.9, 0.1, 0.8, 0.2, 0.6, 0.4, 0.3, 0.7],
    )
    found = ev.gate_values(parse_gate("roc_auc_difference[gender]", "<= 0.1"), rows, [0, 1])
    # a: every positive above every negative (1.0); b: one pair of four in order (0.25)
    assert found[0]["value"] == pytest.approx(1.0 - 0.25)


@pytest.mark.parametrize(
    ("key", "classes", "says"),
    [
        ("roc_auc[region]", [0, 1], "the evaluation data has no column `region`"),
        ("demographic_parity_difference[gender]", None, "needs a binary classifier"),
        ("r2[gender]", [0, 1], "r2 is not a metric of a classifier"),
        ("accuracy[gender]", None, "accuracy is not a metric of a regressor"),
        ("accuracy[income]", [0, 1], "`income` has 101 distinct values"),
    ],
)
def test_a_gate_that_does_not_fit_the_data_or_model_says_why(
    key: str, classes: list | None, says: str
) -> None:
    n = 101
    rows = frame(["a"] * n, [1] * n, [1] * n)
    with pytest.raises(EvaluationError, match=re.escape(says)):
        ev.gate_values(parse_gate(key, ">= 0.5"), rows, classes)
    with pytest.raises(GateFailed, match=r"^n.ipynb: gate `.*` cannot be checked: "):
        check_gates({key: ">= 0.5"}, {}, "n.ipynb", lambda g: ev.gate_values(g, rows, classes))


def test_score_and_the_evaluator_read_an_evaluation_file(tmp_path: Path) -> None:
    rows = frame(["a", "b", "a", "b"], [1, 0, 1, 0], [1, 0, 0, 0], [0.9, 0.2, 0.4, 0.3])
    path = tmp_path / ev.FILE
    rows.to_parquet(path, index=False)
    assert ev.score(pd.read_parquet(path), "roc_auc", [0, 1]) == 1.0
    assert ev.score(pd.read_parquet(path), "accuracy", [0, 1]) == 0.75
    assert list(ev.inputs(rows).columns) == ["gender", "income"]
    assert ev.evaluator(tmp_path / "none.parquet", [0, 1]) is None
    results = check_gates({"accuracy[gender]": ">= 0.5"}, {}, "n", ev.evaluator(path, [0, 1]))
    assert [(r["slice"], r["value"]) for r in results] == [("a", 0.5), ("b", 1.0)]
    manifest = {"evaluation": {"file": ev.FILE}}
    assert ev.read(tmp_path, manifest).equals(pd.read_parquet(path))
    assert ev.read(tmp_path, {}) is None


def test_monitor_quality_gets_the_evaluation_rows_as_its_reference_side(tmp_path: Path) -> None:
    frame(["a", "b", "a", "b"], [1, 0, 1, 0], [1, 0, 0, 0], [0.9, 0.2, 0.4, 0.3]).to_parquet(
        tmp_path / ev.FILE, index=False
    )
    config = {
        "task": "classification",
        "classes": [0, 1],
        "metrics": {"accuracy": 0.75},
        "gates": [
            {"metric": "accuracy", "bound": ">= 0.7", "value": 0.75, "passed": True},
            {"metric": "accuracy[g]", "measure": "accuracy", "column": "g", "bound": ">= 0.99"},
        ],
    }
    reference = evaluation_outcomes(tmp_path, config)
    assert list(reference.columns) == ["target", "prediction", "proba"]
    current = pd.DataFrame({"target": [1, 1, 0, 0], "prediction": [1, 1, 0, 1]})
    rows = {r["metric"]: r for r in quality(current, config, reference)}
    assert rows["accuracy"]["current"] == 0.75 and rows["accuracy"]["evaluation"] == 0.75
    assert rows["accuracy"]["gate"] == ">= 0.7"  # the slice gate is not a gate of all rows
    assert rows["f1"]["evaluation"] == pytest.approx(
        ev.metric_value("f1", [1, 0, 1, 0], [1, 0, 0, 0], classes=[0, 1])
    )
    assert evaluation_outcomes(tmp_path / "none", config) is None
    assert "evaluation" not in quality(current, config)[0]


def test_read_evaluation_gives_a_bentos_input_rows_and_outcomes(tmp_path: Path) -> None:
    (tmp_path / "monitoring").mkdir()
    rows = frame(["a", "b"], [1, 0], [1, 1], [0.7, 0.6])
    rows.to_parquet(tmp_path / "monitoring" / ev.FILE, index=False)
    manifest = {"evaluation": {"file": f"monitoring/{ev.FILE}"}}
    bento = type("Bento", (), {"src": tmp_path, "manifest": manifest})()
    inputs, outcomes = ev.read_evaluation(bento)
    assert list(inputs.columns) == ["gender", "income"] and outcomes.tolist() == [1, 0]
    bento.manifest = {}
    assert ev.read_evaluation(bento) == (None, None)


@pytest.mark.parametrize(
    ("name", "lower"),
    [("rmse", True), ("mean_absolute_error", True), ("log_loss", True), ("roc_auc", False)],
)
def test_which_metrics_are_better_lower(name: str, lower: bool) -> None:
    assert ev.lower_is_better(name) is lower


def test_the_bento_ships_evaluation_rows_that_pass_the_input_schema(tmp_path: Path) -> None:
    import pandera.pandas as pa

    from nb2prod.errors import ReferenceInvalid
    from nb2prod.monitoring.attach import _evaluation

    schema = pa.DataFrameSchema(
        {"gender": pa.Column(str, pa.Check.isin(["a", "b"])), "income": pa.Column(float)},
        strict=True,
    )
    rows = frame(["a", "b"] * 50, [1, 0] * 50, [1, 1] * 50, [0.7, 0.6] * 50)
    written = tmp_path / "train" / ev.FILE
    written.parent.mkdir()
    rows.to_parquet(written, index=False)
    training = type("T", (), {"evaluation_file": written, "evaluation": {"X": "X_te", "y": "y_te"}})
    manifest = {"notebook": "n.ipynb", "input_schema": "Applicant"}
    folder = tmp_path / "monitoring"
    folder.mkdir()
    # sampled to the cap with a fixed seed, outcomes and outputs kept beside the inputs
    assert _evaluation(folder, training, schema, manifest, 30) == [ev.FILE]
    shipped = pd.read_parquet(folder / ev.FILE)
    assert len(shipped) == 30 and list(shipped.columns) == list(rows.columns)
    again = tmp_path / "again"
    again.mkdir()
    _evaluation(again, training, schema, dict(manifest), 30)
    assert shipped.equals(pd.read_parquet(again / ev.FILE))
    assert manifest["evaluation"] == {
        "file": f"monitoring/{ev.FILE}",
        "rows": 30,
        "target_column": ev.TARGET,
        "prediction_column": ev.PREDICTION,
        "proba_prefix": ev.PROBA,
        "X": "X_te",
        "y": "y_te",
    }
    # rows the service would refuse stop the build, naming the setting and the column
    frame(["a", "c"], [1, 0], [1, 1]).to_parquet(written, index=False)
    with pytest.raises(ReferenceInvalid) as info:
        _evaluation(folder, training, schema, manifest, 30)
    assert str(info.value).startswith(
        "n.ipynb: the evaluation data `X_te` (nb2prod.evaluation) fails the notebook's own input "
        "schema Applicant in column(s) gender (check isin"
    )


def test_default_evaluation_rows_that_fail_the_schema_are_not_shipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pandera.pandas as pa

    from nb2prod.monitoring.attach import _evaluation

    schema = pa.DataFrameSchema({"gender": pa.Column(str, pa.Check.isin(["a"]))}, strict=False)
    written = tmp_path / ev.FILE
    frame(["a", "c"], [1, 0], [1, 1]).to_parquet(written, index=False)
    names = {"X": "X_test", "y": "y_test", "required": False, "rows": 2}
    training = type("T", (), {"evaluation_file": written, "evaluation": names})
    manifest = {"notebook": "n.ipynb", "input_schema": "Applicant"}
    with caplog.at_level("WARNING"):
        assert _evaluation(tmp_path, training, schema, manifest, 30) == []
    assert "evaluation" not in manifest
    assert "no evaluation data shipped: X_test fails the input schema in gender" in caplog.text


def _export_cell(tmp_path: Path, evaluation: dict | None) -> str:
    """The export cell the training run of the fairness fixture ends with."""
    import json as json_module

    from nb2prod.builder.training import EXPORT_TAG, prepare
    from nb2prod.notebook.check import check
    from tests.support import FIXTURES

    path = FIXTURES / "fairness" / "applicants.ipynb"
    content = json_module.loads(path.read_text(encoding="utf-8"))
    if evaluation is not None:
        content["metadata"]["nb2prod"]["evaluation"] = evaluation
    checked = check(path, content=content)
    node = prepare(checked.notebook, tmp_path, checked)
    return next(c.source for c in node.cells if EXPORT_TAG in c.metadata.get("tags", []))


def _kernel_namespace() -> dict:
    from sklearn.linear_model import LogisticRegression

    from tests.support import FIXTURES

    data = pd.read_csv(FIXTURES / "fairness" / "applicants.csv")
    X = data[["age", "income", "debt_ratio"]]
    model = LogisticRegression(max_iter=500).fit(X[:1500], data["approved"][:1500])
    return {"model": model, "metrics": {"roc_auc": 0.8}, "X_train": X[:1500]} | {
        "X_test": X[1500:],
        "y_test": data["approved"][1500:].to_numpy(),
    }


def test_the_export_cell_writes_the_evaluation_rows_in_the_kernel(tmp_path: Path) -> None:
    namespace = _kernel_namespace()
    exec(compile(_export_cell(tmp_path, None), "export cell", "exec"), namespace)  # noqa: S102
    info = json.loads((tmp_path / "export.json").read_text())
    assert info["evaluation"] == {"X": "X_test", "y": "y_test", "required": False, "rows": 500}
    rows = pd.read_parquet(tmp_path / ev.FILE)
    model, X_test = namespace["model"], namespace["X_test"]
    assert rows[ev.TARGET].tolist() == namespace["y_test"].tolist()
    assert rows[ev.PREDICTION].tolist() == model.predict(X_test).tolist()
    assert np.allclose(rows[ev.proba_column(1)], model.predict_proba(X_test)[:, 1])
    assert ev.inputs(rows).equals(X_test.reset_index(drop=True))


def test_named_evaluation_data_missing_at_run_time_fails_the_run_but_the_default_does_not(
    tmp_path: Path,
) -> None:
    namespace = _kernel_namespace()
    namespace["X_test"] = namespace["X_test"].to_numpy()  # not a DataFrame of raw inputs
    source = _export_cell(tmp_path, {"X": "X_test", "y": "y_test"})
    with pytest.raises(
        TypeError, match=r"`X_test` \(nb2prod.evaluation\) must be a pandas DataFrame"
    ):
        exec(compile(source, "export cell", "exec"), dict(namespace))  # noqa: S102
    exec(compile(_export_cell(tmp_path, None), "export cell", "exec"), dict(namespace))  # noqa: S102
    skipped = json.loads((tmp_path / "export.json").read_text())["evaluation"]
    assert skipped["skipped"].startswith("TypeError: `X_test` (nb2prod.evaluation) must be")
    assert not (tmp_path / ev.FILE).exists()
