"""Model quality on current data whose outcomes are known, beside training and the gates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import MonitorError
from nb2prod.monitoring.attach import PREDICTION

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from evidently.core.report import Snapshot
from nb2prod.notebook.gates import Bound


def _scores(
    y: np.ndarray, predictions: np.ndarray, proba: np.ndarray | None, config: dict[str, Any]
) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    if config["task"] == "regression":
        return {
            "r2": m.r2_score(y, predictions),
            "mae": m.mean_absolute_error(y, predictions),
            "rmse": float(np.sqrt(m.mean_squared_error(y, predictions))),
        }
    scores = {"accuracy": m.accuracy_score(y, predictions)}
    classes = config.get("classes") or []
    if len(classes) == 2:
        scores["f1"] = m.f1_score(y, predictions, pos_label=classes[1])
        if proba is not None and len(set(y)) == 2:
            scores["roc_auc"] = m.roc_auc_score(y, proba)
    return {k: float(v) for k, v in scores.items()}


def _examples(values: pd.Series) -> str:
    shown = list(dict.fromkeys(str(v) for v in values))  # distinct, in order of appearance
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    return ", ".join(f"`{v}`" for v in shown[:3]) + more


def target_values(series: pd.Series, config: dict[str, Any], target: str) -> pd.Series:
    """The ``--target`` column as outcomes comparable with the model's predictions.

    A classifier's outcomes must be its classes: equal values (``1.0`` for ``1``) or the
    classes written as strings (``"1"`` for ``1``) are mapped to them. A regressor's must be
    numbers. Missing values stay missing (those rows have no known outcome).

    Raises:
        MonitorError: a known value is no class (``yes`` against 0/1), or is not a number.
    """
    import pandas as pd

    known = series.notna()
    if config["task"] == "regression":
        numbers = pd.to_numeric(series.where(known), errors="coerce")
        bad = series[known & numbers.isna()]
        if len(bad):
            raise MonitorError(
                f"--target {target}: column `{target}` holds {_examples(bad)}, which are not "
                "numbers; a regressor's outcomes must be numbers.",
                column=target,
            )
        return numbers
    classes = list(config.get("classes") or [])
    if not classes:
        return series
    by_value = {c: c for c in classes}
    by_text = {str(c): c for c in classes}

    def as_class(value: Any) -> Any:
        try:
            return by_value.get(value, by_text.get(str(value)))
        except TypeError:  # unhashable (a list in a parquet cell): no class
            return None

    mapped = series.map(as_class).where(known, None)
    bad = series[known & mapped.isna()]
    if len(bad):
        raise MonitorError(
            f"--target {target}: column `{target}` holds {_examples(bad)}, which are not among "
            f"the model's classes ({', '.join(map(str, classes))}); give the outcomes as those "
            "classes.",
            column=target,
        )
    return mapped


def outcomes(
    truth: pd.Series,
    predictions: np.ndarray | None,
    positive: np.ndarray | None,
    config: dict[str, Any],
    target: str,
) -> pd.DataFrame:
    """The rows whose outcome ``truth`` (from ``target_values``) is known: columns target,
    prediction, and proba (the positive class's probability, when it is known).

    Raises:
        MonitorError: there are no predictions, or no row has a known target.
    """
    import numpy as np
    import pandas as pd

    if predictions is None:
        raise MonitorError(
            "--target needs predictions: the current data has no `prediction` column and no "
            "model was found to compute them."
        )
    known = truth.notna().to_numpy()
    if not known.any():
        raise MonitorError(
            f"--target {target}: no row of the current data has a value in `{target}`."
        )
    classes = config.get("classes") or []
    y = truth.to_numpy()[known]
    if config["task"] == "classification" and classes:
        y = y.astype(np.asarray(classes).dtype, copy=False)
    out = pd.DataFrame({"target": y, PREDICTION: np.asarray(predictions)[known]})
    if positive is not None and len(classes) == 2:
        proba = np.asarray(positive, dtype=float)[known]
        if np.isfinite(proba).all():  # logs of /predict rows have none: then labels only
            out["proba"] = proba
    return out


def evaluation_outcomes(folder: Path, config: dict[str, Any]) -> pd.DataFrame | None:
    """The bento's evaluation rows (``monitoring/evaluation.parquet``) as ``outcomes`` has
    them: target, prediction, proba; None when the bento ships none."""
    import pandas as pd

    from nb2prod.builder import evaluation as ev

    path = folder / ev.FILE
    if not path.is_file():
        return None
    frame = pd.read_parquet(path)
    out = pd.DataFrame({"target": frame[ev.TARGET], PREDICTION: frame[ev.PREDICTION]})
    classes = config.get("classes") or []
    if len(classes) == 2 and ev.proba_column(classes[1]) in frame:
        out["proba"] = frame[ev.proba_column(classes[1])].to_numpy(dtype=float)
    return out


def _score(known: pd.DataFrame, config: dict[str, Any]) -> dict[str, float]:
    positive = known["proba"].to_numpy() if "proba" in known else None
    return _scores(known["target"].to_numpy(), known[PREDICTION].to_numpy(), positive, config)


def quality(
    known: pd.DataFrame, config: dict[str, Any], evaluation: pd.DataFrame | None = None
) -> list[dict]:
    """Quality on the ``outcomes`` rows, next to the training metrics, the gates and, when
    the bento ships evaluation rows (``evaluation_outcomes``), the same metric on those."""
    scores = _score(known, config)
    reference = _score(evaluation, config) if evaluation is not None else {}
    # slice and fairness gates (with a column) are not a metric of all rows
    gates = {g["metric"]: g["bound"] for g in config.get("gates", []) if not g.get("column")}
    training = config.get("metrics", {})
    rows = []
    for name, value in scores.items():
        row = {"metric": name, "current": value, "training": training.get(name)}
        if evaluation is not None:
            row["evaluation"] = reference.get(name)
        row["change"] = None if row["training"] is None else value - row["training"]
        bound = Bound.parse(gates.get(name, ""))
        row["gate"] = gates.get(name)
        row["gate_passed"] = bound.holds(value) if bound else None
        rows.append(row)
    return rows


def quality_report(
    known: pd.DataFrame,
    config: dict[str, Any],
    current: str,
    evaluation: pd.DataFrame | None = None,
) -> Snapshot:
    """Evidently's classification or regression preset on the rows whose outcome is known,
    with the bento's evaluation rows (``evaluation_outcomes``) as its reference side."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Regression,
        Report,
    )
    from evidently.presets import ClassificationPreset, RegressionPreset

    if config["task"] == "regression":
        task = {"regression": [Regression(target="target", prediction=PREDICTION)]}
        preset, columns = RegressionPreset(), {"numerical_columns": ["target", PREDICTION]}
    else:
        classes = config.get("classes") or []
        probas = "proba" if "proba" in known else None
        if len(classes) == 2:
            kind = BinaryClassification(
                target="target",
                prediction_labels=PREDICTION,
                prediction_probas=probas,
                pos_label=classes[1],
            )
        else:
            kind = MulticlassClassification(target="target", prediction_labels=PREDICTION)
        task = {"classification": [kind]}
        preset, columns = ClassificationPreset(), {"categorical_columns": ["target", PREDICTION]}
    try:
        definition = DataDefinition(**task, **columns)
        reference = None
        if evaluation is not None:
            reference = Dataset.from_pandas(
                evaluation[[c for c in known.columns if c in evaluation]],
                data_definition=definition,
            )
        current_data = Dataset.from_pandas(known, data_definition=definition)
        return Report([preset]).run(current_data, reference)
    except Exception as exc:
        raise MonitorError(f"Evidently could not score the outcomes in {current}: {exc}.") from exc
