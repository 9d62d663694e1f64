"""The figures of a shadow comparison, from two bentos' answers to the same rows.

Pure functions of frames and series (``shadow.py`` composes them): agreement and the class
flip matrix, the distribution of differences of a regressor's predictions, the rows each side
rejects, each model's metrics on known outcomes, and Evidently's prediction-distribution shift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from evidently.core.report import Snapshot

EXAMPLES = 5  # rejected rows shown with their failures


def _label(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def agreement(champion: pd.Series, challenger: pd.Series) -> dict[str, Any]:
    """How often two classifiers give the same class on the same rows, and the flip matrix.

    ``matrix[i][j]`` counts the rows the champion put in ``labels[i]`` and the challenger in
    ``labels[j]``; the diagonal is agreement.
    """
    import pandas as pd

    a, b = champion.reset_index(drop=True), challenger.reset_index(drop=True)
    labels = sorted(set(a.tolist()) | set(b.tolist()), key=lambda v: (str(type(v)), v))
    table = pd.crosstab(a, b).reindex(index=labels, columns=labels, fill_value=0)
    same = int((a == b).sum())
    return {
        "rows": len(a),
        "agreement": same / len(a) if len(a) else None,
        "flipped": len(a) - same,
        "labels": [_label(v) for v in labels],
        "matrix": table.to_numpy().astype(int).tolist(),
    }


def differences(champion: pd.Series, challenger: pd.Series) -> dict[str, Any]:
    """The distribution of ``challenger - champion`` on the same rows (a regressor's shadow)."""
    import numpy as np

    a = champion.to_numpy(dtype=float)
    diff = challenger.to_numpy(dtype=float) - a
    gap = np.abs(diff)
    if not len(diff):
        return {"rows": 0}
    return {
        "rows": len(diff),
        "mean_diff": float(diff.mean()),
        "mean_abs_diff": float(gap.mean()),
        "p50_abs_diff": float(np.percentile(gap, 50)),
        "p90_abs_diff": float(np.percentile(gap, 90)),
        "p99_abs_diff": float(np.percentile(gap, 99)),
        "max_abs_diff": float(gap.max()),
        "champion_std": float(a.std()),
    }


def rejects(found: list[dict[str, Any]], rows: int, examples: int = EXAMPLES) -> dict[str, Any]:
    """A side's rejected rows: how many, their share, and the first with their failures."""
    return {
        "count": len(found),
        "rate": len(found) / rows if rows else 0.0,
        "examples": found[:examples],
    }


def model_metrics(
    task: str | None,
    outcome: pd.Series,
    predictions: pd.DataFrame,
    proba_columns: list[str],
    classes: list[Any] | None,
) -> dict[str, float | None]:
    """A model's metrics on known outcomes (aligned, row for row, with ``predictions``).

    Classification: ``accuracy``, and ``roc_auc`` when there are probabilities (one-vs-rest
    past two classes). Regression: ``rmse``, ``mae``, ``r2``. Each is
    :func:`nb2prod.builder.evaluation.metric_value`, as the gates compute it; one that is
    undefined here (roc_auc with one class among the outcomes) is None.
    """
    from nb2prod.builder.evaluation import metric_value
    from nb2prod.errors import EvaluationError

    regression = task == "regression"
    has_proba = bool(proba_columns) and all(c in predictions.columns for c in proba_columns)
    names = ["rmse", "mae", "r2"] if regression else ["accuracy"] + ["roc_auc"] * has_proba
    proba = predictions[proba_columns].to_numpy(dtype=float) if has_proba else None
    found: dict[str, float | None] = {}
    for name in names:
        try:
            found[name] = metric_value(
                name, outcome.to_numpy(), predictions["prediction"].to_numpy(), proba, classes
            )
        except EvaluationError as exc:
            if not exc.fields.get("undefined"):
                raise
            found[name] = None
    return found


def metric_differences(
    champion: dict[str, float | None], challenger: dict[str, float | None]
) -> dict[str, float | None]:
    """``challenger - champion`` for each metric both have."""
    return {
        name: (challenger[name] - value)
        if value is not None and challenger.get(name) is not None
        else None
        for name, value in champion.items()
        if name in challenger
    }


def prediction_drift(
    champion: pd.Series, challenger: pd.Series, task: str | None
) -> tuple[dict[str, Any], Snapshot | None]:
    """Evidently's ``ValueDrift`` of the prediction: the champion's as reference, the
    challenger's as current, with Evidently's default method for the column's kind.

    Returns the verdict (``method``, ``score``, ``threshold``, ``drifted``; ``error`` when
    Evidently could not compute it, e.g. a constant column) and the snapshot for its HTML.
    """
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    from nb2prod.monitoring.summary import quiet

    kind = "numerical" if task == "regression" else "categorical"
    definition = DataDefinition(**{f"{kind}_columns": ["prediction"]})

    def dataset(values: pd.Series) -> Dataset:
        frame = pd.DataFrame({"prediction": values.reset_index(drop=True)})
        return Dataset.from_pandas(frame, data_definition=definition)

    try:
        with quiet():
            report = Report([ValueDrift(column="prediction")], include_tests=True)
            snapshot = report.run(dataset(challenger), dataset(champion))
            found = snapshot.dict()
    except Exception as exc:  # noqa: BLE001 - Evidently on a degenerate column: said, not fatal
        return {"drifted": None, "error": f"{type(exc).__name__}: {exc}"}, None
    metric = found["metrics"][0]
    failed = {t["metric_config"]["metric_id"] for t in found["tests"] if t["status"] == "FAIL"}
    return {
        "kind": kind,
        "method": metric["config"].get("method"),
        "score": float(metric["value"]),
        "threshold": metric["config"].get("threshold"),
        "drifted": metric["id"] in failed,
    }, snapshot
