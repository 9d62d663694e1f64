"""Metric values by name on evaluation data: slice gates, fairness gates, promotion scores.

The evaluation data is the held-out rows the ``evaluation`` setting names (default
``X_test``/``y_test``), as the training run's export cell writes them: the raw input columns,
the outcome in ``TARGET``, the model's prediction in ``PREDICTION`` and, for a model with
``predict_proba``, one ``proba_column(label)`` per class. A bento ships it as
``monitoring/evaluation.parquet`` (manifest ``evaluation``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import EvaluationError
from nb2prod.notebook.gates import (
    CLASSIFIER_METRICS,
    FAIRNESS,
    LOWER_IS_BETTER,
    METRICS,
    REGRESSOR_METRICS,
    Evaluate,
    Gate,
    canonical,
    known_names,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

FILE = "evaluation.parquet"
TARGET = "__target__"  # reserved column names: an input column never starts with __
PREDICTION = "__prediction__"
PROBA = "__proba__"
RESERVED = (TARGET, PREDICTION)
SEED = 0  # the sample of evaluation rows above REFERENCE_ROWS, as the reference's
MAX_SLICES = 100  # more distinct values than this: not a column of categories


def proba_column(label: Any) -> str:
    """The column of the probability of class ``label``: ``__proba__1``."""
    return f"{PROBA}{label}"


def is_reserved(column: str) -> bool:
    return column in RESERVED or str(column).startswith(PROBA)


def inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The raw input columns of an evaluation frame (what a request would send)."""
    return frame[[c for c in frame.columns if not is_reserved(c)]]


def read(src: Path, manifest: dict[str, Any]) -> pd.DataFrame | None:
    """The evaluation rows a bento ships (``src`` is its ``src/``), or None when it has none."""
    import pandas as pd

    entry = manifest.get("evaluation")
    if not entry or not (src / entry["file"]).is_file():
        return None
    return pd.read_parquet(src / entry["file"])


def read_evaluation(bento: Any) -> tuple[pd.DataFrame | None, pd.Series | None]:
    """``(rows, outcomes)`` of an opened bento (``bento.locate.open_bento``): the raw input
    rows a request would send and their outcomes, index 0..n-1; ``(None, None)`` without."""
    frame = read(Path(bento.src), bento.manifest)
    if frame is None:
        return None, None
    return inputs(frame).reset_index(drop=True), frame[TARGET].reset_index(drop=True)


def lower_is_better(name: str) -> bool:
    """log_loss, rmse, mae, mse (and their aliases): a smaller value is the better model."""
    return canonical(name) in LOWER_IS_BETTER


def metric_value(
    name: str,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: list | None = None,
) -> float:
    """The metric ``name`` of predictions against outcomes.

    Names (``nb2prod.notebook.gates.METRICS``): ``roc_auc``, ``accuracy``,
    ``balanced_accuracy``, ``f1``, ``precision``, ``recall``, ``log_loss`` for classifiers;
    ``r2``, ``rmse``, ``mae``, ``mse`` for regressors; scikit-learn's function names
    (``roc_auc_score``, ``mean_absolute_error``, ...) and ``auc`` mean the same. For a
    binary classifier, f1, precision and recall are of the positive class ``classes[1]``;
    with more classes they are macro averages, and roc_auc is one-vs-rest.

    Args:
        name: the metric.
        y_true: the outcomes.
        y_pred: the predicted labels (classifier) or values (regressor).
        proba: the probabilities, one column per class in the order of ``classes``; or,
            for a binary classifier, the positive class's alone (1-D). Needed for roc_auc
            and log_loss.
        classes: the model's classes (``model.classes_``); default: the sorted labels seen.

    Raises:
        EvaluationError: an unknown name, no probabilities for roc_auc or log_loss, no
            rows, or a value that is undefined on these rows (roc_auc on one class).
    """
    import numpy as np
    from sklearn import metrics as m

    metric = canonical(name)
    if metric is None:
        import difflib

        close = difflib.get_close_matches(name, known_names(), n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(METRICS)}."
        raise EvaluationError(f"`{name}` is no metric nb2prod computes; {hint}", metric=name)
    y, pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(y) == 0:
        raise EvaluationError(f"{metric} is undefined on no rows.", metric=metric)
    if metric in REGRESSOR_METRICS:
        y, pred = y.astype(float), pred.astype(float)
        if metric == "r2" and len(y) < 2:
            raise EvaluationError("r2 is undefined on one row.", metric=metric, undefined=True)
        value = {
            "r2": lambda: m.r2_score(y, pred),
            "mae": lambda: m.mean_absolute_error(y, pred),
            "mse": lambda: m.mean_squared_error(y, pred),
            "rmse": lambda: np.sqrt(m.mean_squared_error(y, pred)),
        }[metric]()
        return _finite(value, metric, len(y))
    labels = list(classes) if classes is not None and len(classes) else _labels(y, pred)
    binary = len(labels) == 2
    if metric == "accuracy":
        return float(m.accuracy_score(y, pred))
    if metric == "balanced_accuracy":
        return _finite(_quiet(m.balanced_accuracy_score, y, pred), metric, len(y))
    if metric in ("f1", "precision", "recall"):
        scorer = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}
        how = {"pos_label": labels[1]} if binary else {"average": "macro", "labels": labels}
        return float(scorer[metric](y, pred, zero_division=0, **how))
    full = _proba(proba, labels, metric, len(y))
    if metric == "roc_auc":
        present = list(dict.fromkeys(y.tolist()))
        if len(present) < 2:
            raise EvaluationError(
                f"roc_auc is undefined on {len(y)} rows of one class ({present[0]!r}).",
                metric=metric,
                undefined=True,
            )
        try:
            if binary:
                return float(m.roc_auc_score(y == labels[1], full[:, 1]))
            return float(m.roc_auc_score(y, full, multi_class="ovr", labels=labels))
        except ValueError as exc:
            raise EvaluationError(f"roc_auc is undefined here: {exc}.", undefined=True) from exc
    return _finite(m.log_loss(y, full, labels=labels), metric, len(y))


def _labels(y: np.ndarray, pred: np.ndarray) -> list:
    import numpy as np

    return sorted(np.unique(np.concatenate([y, pred])).tolist())


def _quiet(fn: Any, *args: Any) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def _finite(value: Any, metric: str, rows: int) -> float:
    import math

    value = float(value)
    if not math.isfinite(value):
        raise EvaluationError(
            f"{metric} is undefined on these {rows} rows.", metric=metric, undefined=True
        )
    return value


def _proba(proba: Any, labels: list, metric: str, rows: int) -> np.ndarray:
    import numpy as np

    if proba is None:
        raise EvaluationError(
            f"{metric} needs the model's probabilities, and it gives none (no predict_proba).",
            metric=metric,
        )
    full = np.asarray(proba, dtype=float)
    if full.ndim == 1:
        if len(labels) != 2:
            raise EvaluationError(f"{metric} needs one probability column per class.")
        full = np.column_stack([1 - full, full])
    if full.shape != (rows, len(labels)):
        raise EvaluationError(
            f"{metric} needs probabilities of shape ({rows}, {len(labels)}), not {full.shape}."
        )
    return full


def columns_of(frame: pd.DataFrame, classes: list | None) -> tuple[Any, Any, Any]:
    """``(y_true, y_pred, proba)`` of an evaluation frame; proba None when it has none."""
    y, pred = frame[TARGET].to_numpy(), frame[PREDICTION].to_numpy()
    names = [proba_column(c) for c in classes or []]
    has = bool(names) and all(n in frame.columns for n in names)
    return y, pred, frame[names].to_numpy(dtype=float) if has else None


def score(frame: pd.DataFrame, name: str, classes: list | None = None) -> float:
    """The metric ``name`` on an evaluation frame (``TARGET``, ``PREDICTION``, probas).

    Raises:
        EvaluationError: as :func:`metric_value`.
    """
    y, pred, proba = columns_of(frame, classes)
    return metric_value(name, y, pred, proba, classes)


def gate_values(gate: Gate, frame: pd.DataFrame, classes: list | None) -> list[dict[str, Any]]:
    """A bracketed gate's values on ``frame``, as ``check_gates`` wants them.

    A slice gate gives one entry per value of the column (missing values are one slice,
    ``None``). A slice where the metric is undefined (roc_auc on one class) is skipped:
    its value is None and its note says why.

    Raises:
        EvaluationError: the column is not in the evaluation data or has too many values,
            a fairness metric on a model that is not a binary classifier, a metric that
            does not suit the model.
    """
    column = gate.column
    if column not in inputs(frame).columns:
        raise EvaluationError(
            f"the evaluation data has no column `{column}`; its columns are "
            f"{', '.join(map(str, inputs(frame).columns))}.",
            column=column,
        )
    _suits(gate, classes)
    keys = frame[column].astype(object).where(frame[column].notna(), None)
    distinct = keys.nunique(dropna=False)
    if distinct > MAX_SLICES:
        raise EvaluationError(
            f"`{column}` has {distinct} distinct values in the evaluation data, more than "
            f"{MAX_SLICES}; slice or group by a column of categories.",
            column=column,
        )
    if gate.kind == "slice":
        return _slices(gate, frame, keys, classes)
    return [_grouped(gate, frame, keys, classes)]


def _suits(gate: Gate, classes: list | None) -> None:
    task = "classifier" if classes else "regressor"
    if gate.kind == "fairness" and len(classes or []) != 2:
        raise EvaluationError(
            f"{gate.metric} needs a binary classifier, and the model is a "
            + (f"classifier of {len(classes)} classes." if classes else "regressor."),
            metric=gate.metric,
        )
    wrong = gate.metric in (REGRESSOR_METRICS if classes else CLASSIFIER_METRICS)
    if gate.kind != "fairness" and wrong:
        raise EvaluationError(
            f"{gate.metric} is not a metric of a {task}, and the model is one.",
            metric=gate.metric,
        )


def _slices(
    gate: Gate, frame: pd.DataFrame, keys: pd.Series, classes: list | None
) -> list[dict[str, Any]]:
    out = []
    for value in sorted(keys.unique().tolist(), key=lambda v: (v is None, str(v))):
        rows = frame[keys.isna()] if value is None else frame[keys == value]
        entry: dict[str, Any] = {"slice": _plain(value), "rows": len(rows), "note": None}
        try:
            entry["value"] = score(rows, gate.metric, classes)
        except EvaluationError as exc:
            if not exc.fields.get("undefined"):
                raise
            entry["value"], entry["note"] = None, exc.message
            log.warning("gate %s: slice %r skipped: %s", gate.key, value, exc.message)
        out.append(entry)
    return out


def _grouped(
    gate: Gate, frame: pd.DataFrame, keys: pd.Series, classes: list | None
) -> dict[str, Any]:
    import numpy as np
    from fairlearn import metrics as fm

    groups = keys.where(keys.notna(), "missing").astype(str).to_numpy()
    y, pred, proba = columns_of(frame, classes)
    if gate.kind == "fairness":
        positive = classes[1]
        fn = getattr(fm, gate.metric)
        value = fn(y == positive, pred == positive, sensitive_features=groups)
    else:
        positions = np.arange(len(frame))

        def one(y_group: Any, at: Any) -> float:
            at = np.asarray(at, dtype=int)
            part = None if proba is None else proba[at]
            return metric_value(gate.metric, y_group, pred[at], part, classes)

        by = fm.MetricFrame(metrics=one, y_true=y, y_pred=positions, sensitive_features=groups)
        value = by.difference() if gate.stat == "difference" else by.ratio()
    value = float(value)
    groups_n = len(set(groups.tolist()))
    return {"slice": None, "value": value, "rows": len(frame), "groups": groups_n, "note": None}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def evaluator(path: Path | None, classes: list | None) -> Evaluate | None:
    """``check_gates``'s hook on the evaluation rows at ``path``; None when there are none."""
    if path is None or not Path(path).is_file():
        return None
    loaded: list[pd.DataFrame] = []

    def evaluate(gate: Gate) -> list[dict[str, Any]]:
        import pandas as pd

        if not loaded:
            loaded.append(pd.read_parquet(path))
        return gate_values(gate, loaded[0], classes)

    return evaluate


__all__ = [
    "FAIRNESS",
    "FILE",
    "PREDICTION",
    "TARGET",
    "columns_of",
    "evaluator",
    "gate_values",
    "inputs",
    "lower_is_better",
    "metric_value",
    "proba_column",
    "read",
    "read_evaluation",
    "score",
]
