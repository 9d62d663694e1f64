"""Metric gates: ``{"roc_auc": ">= 0.80"}`` bounds and gate names, parsed in one place and checked.

A gate's name is one of:

- ``roc_auc``: a key of the notebook's own ``metrics`` dict (any name the notebook computes);
- ``roc_auc[contract]``: a slice gate, the metric on each value of the evaluation data's
  column ``contract``; every slice must pass;
- ``demographic_parity_difference[gender]`` (or ``_ratio``, ``equalized_odds_difference``,
  ``equalized_odds_ratio``): fairlearn's fairness metric across the groups of ``gender``;
- ``accuracy_difference[gender]`` / ``accuracy_ratio[gender]``: the metric per group of
  ``gender`` (fairlearn's ``MetricFrame``), then ``.difference()`` or ``.ratio()``.

Bracketed gates are computed on the evaluation data (the ``evaluation`` setting) with the
metrics named in ``METRICS`` (``nb2prod.builder.evaluation.metric_value``).
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from nb2prod.errors import EvaluationError, GateFailed

_BOUND = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}
_BRACKETED = re.compile(r"^\s*([A-Za-z_]\w*)\s*\[\s*([^\[\]]*?)\s*\]\s*$")

CLASSIFIER_METRICS = (
    "roc_auc",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "log_loss",
)
REGRESSOR_METRICS = ("r2", "rmse", "mae", "mse")
METRICS = CLASSIFIER_METRICS + REGRESSOR_METRICS
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse"})
# scikit-learn's function names, and common short names, for the same metrics
ALIASES = {
    "auc": "roc_auc",
    "roc_auc_score": "roc_auc",
    "accuracy_score": "accuracy",
    "balanced_accuracy_score": "balanced_accuracy",
    "f1_score": "f1",
    "precision_score": "precision",
    "recall_score": "recall",
    "r2_score": "r2",
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
}
# fairlearn.metrics functions of (y_true, y_pred, sensitive_features): binary classifiers only
FAIRNESS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)
GROUP_STATS = ("difference", "ratio")  # MetricFrame.difference(), MetricFrame.ratio()
KINDS = ("plain", "slice", "fairness", "group")


def canonical(name: str) -> str | None:
    """The metric ``name`` means (``auc`` -> ``roc_auc``), or None when it is none of METRICS."""
    name = ALIASES.get(name, name)
    return name if name in METRICS else None


def known_names() -> list[str]:
    """Every name a bracketed gate may use, for did-you-mean."""
    group = [f"{m}_{s}" for m in METRICS for s in GROUP_STATS]
    return [*METRICS, *ALIASES, *FAIRNESS, *group]


@dataclass(frozen=True)
class Bound:
    """One gate's bound: an operator and a limit."""

    op: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> Bound | None:
        """``">= 0.8"`` -> ``Bound(">=", 0.8)``; None when ``text`` is not of that form."""
        match = _BOUND.match(str(text))
        return cls(match[1], float(match[2])) if match else None

    def holds(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.limit))

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass(frozen=True)
class Gate:
    """One gate as written (``key: text``), read: what it computes, on what, and its bound."""

    key: str
    text: str
    kind: str  # one of KINDS
    metric: str  # a notebook metric (plain), one of METRICS, or one of FAIRNESS
    column: str | None = None  # the evaluation data's column, for bracketed gates
    stat: str | None = None  # "difference" or "ratio", for group gates
    bound: Bound | None = None
    problem: tuple[str, str] | None = None  # (finding code, sentence without the notebook)

    @property
    def on_evaluation(self) -> bool:
        """Computed on the evaluation data, not read from the notebook's metrics."""
        return self.kind != "plain"

    @property
    def classifier_only(self) -> bool:
        return self.kind == "fairness" or self.metric in CLASSIFIER_METRICS

    @property
    def regressor_only(self) -> bool:
        return self.kind != "plain" and self.metric in REGRESSOR_METRICS


def parse_gate(key: str, text: str) -> Gate:
    """Read one gate; a malformed one comes back with ``problem`` set, never raised."""
    key, bound = str(key), Bound.parse(text)
    if bound is None:
        why = ("bad-gate", f"gate `{key}: {text}` is not of the form '>= 0.8'.")
        return Gate(key, str(text), "plain", key, problem=why)
    if "[" not in key and "]" not in key:
        return Gate(key, str(text), "plain", key, bound=bound)
    match = _BRACKETED.match(key)
    if match is None or not match[2]:
        why = (
            "bad-gate",
            (
                f"gate `{key}` is not of the form `metric` or `metric[column]` "
                "(such as `roc_auc[contract]`)."
            ),
        )
        return Gate(key, str(text), "plain", key, problem=why)
    name, column = match[1], match[2]
    if name in FAIRNESS:
        return Gate(key, str(text), "fairness", name, column, bound=bound)
    if canonical(name):
        return Gate(key, str(text), "slice", canonical(name), column, bound=bound)
    base, _, stat = name.rpartition("_")
    if stat in GROUP_STATS and canonical(base):
        return Gate(key, str(text), "group", canonical(base), column, stat=stat, bound=bound)
    close = difflib.get_close_matches(name, known_names(), n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(METRICS)}."
    why = (
        "unknown-gate-metric",
        (
            f"gate `{key}` names `{name}`, which is no metric nb2prod computes on "
            f"evaluation data; {hint}"
        ),
    )
    return Gate(key, str(text), "plain", name, column, bound=bound, problem=why)


# What ``check_gates`` asks of the evaluation data: one entry per slice (or one for a
# fairness or group gate, with "groups": their count) with "slice", "value" (None:
# undefined), "rows" and "note".
Evaluate = Callable[[Gate], list[dict[str, object]]]


def check_gates(
    gates: dict[str, str],
    metrics: dict[str, float],
    notebook: str,
    evaluate: Evaluate | None = None,
) -> list[dict[str, object]]:
    """Compare metrics with their gates; raise on the first gate that fails.

    Args:
        gates: the ``gates`` setting.
        metrics: the notebook's own metrics, for plain gates.
        notebook: the notebook's file name, for messages.
        evaluate: computes a bracketed gate on the evaluation data; None when the build
            has none.

    Returns:
        For the manifest: one ``{"metric", "value", "bound", "passed"}`` per plain gate
        (``metric`` is the gate's name as written). A slice gate gives one entry per slice,
        a fairness or group gate one entry, each also with ``measure`` (the metric or
        fairlearn function computed), ``column``, ``slice`` (the slice's value, or None),
        ``rows``, ``note`` (why a slice was skipped, or None) and, for fairness and group
        gates, ``groups``. A skipped slice's ``passed`` is None: it neither passed nor failed.

    Raises:
        GateFailed: a gate is malformed, cannot be computed, or does not hold.
    """
    results: list[dict[str, object]] = []
    for key, text in gates.items():
        gate = parse_gate(key, text)
        if gate.problem:
            raise GateFailed(f"{notebook}: {gate.problem[1]}", metric=key)
        if gate.on_evaluation:
            results += _evaluated(gate, notebook, evaluate)
            continue
        if key not in metrics:
            raise GateFailed(
                f"{notebook}: gate on `{key}` cannot be checked: the notebook's metrics are "
                f"{', '.join(metrics) or 'empty'}.",
                metric=key,
            )
        value, bound = metrics[key], gate.bound
        passed = bound.holds(value)
        results.append({"metric": key, "value": value, "bound": str(bound), "passed": passed})
        if not passed:
            raise GateFailed(
                f"{notebook}: metric gate failed: {key} = {value:.4g}, which is not {bound}.",
                metric=key,
                value=value,
                bound=str(bound),
            )
    return results


def _evaluated(gate: Gate, notebook: str, evaluate: Evaluate | None) -> list[dict[str, object]]:
    """A bracketed gate's entries; raise when it fails or cannot be computed."""
    if evaluate is None:
        raise GateFailed(
            f"{notebook}: gate `{gate.key}` is computed on evaluation data, and the training "
            "run left none: set nb2prod.evaluation to the names of the held-out rows and "
            'outcomes (such as {"X": "X_test", "y": "y_test"}).',
            metric=gate.key,
        )
    try:
        found = evaluate(gate)
    except EvaluationError as exc:
        raise GateFailed(
            f"{notebook}: gate `{gate.key}` cannot be checked: {exc.message.rstrip('.')}.",
            metric=gate.key,
            column=gate.column,
        ) from exc
    bound = gate.bound
    entries = []
    for one in found:
        value = one["value"]
        passed = None if value is None else bound.holds(float(value))
        entries.append(
            {
                "metric": gate.key,
                "measure": gate.metric,
                "column": gate.column,
                "slice": one.get("slice"),
                "value": value,
                "bound": str(bound),
                "passed": passed,
                "rows": one.get("rows"),
                "note": one.get("note"),
                **({"groups": one["groups"]} if "groups" in one else {}),
            }
        )
    failed = [e for e in entries if e["passed"] is False]
    if failed:
        worst = max(failed, key=lambda e: abs(float(e["value"]) - bound.limit))
        raise GateFailed(_failure(gate, worst, len(failed) - 1, notebook), **_fields(worst))
    if all(e["passed"] is None for e in entries):
        notes = "; ".join(dict.fromkeys(str(e["note"]) for e in entries))
        raise GateFailed(
            f"{notebook}: gate `{gate.key}` cannot be checked: {notes.rstrip('.')}.",
            metric=gate.key,
            column=gate.column,
        )
    return entries


def slice_label(value: object) -> str:
    """``'two-year'``, ``1.0``, or ``missing`` for a slice with no value."""
    return "missing" if value is None else repr(value)


def _failure(gate: Gate, worst: dict[str, object], more: int, notebook: str) -> str:
    value, rows = float(worst["value"]), worst["rows"]
    if gate.kind == "slice":
        also = f"; {more} more slice(s) of {gate.column} fail too" if more else ""
        return (
            f"{notebook}: slice gate failed: {gate.metric} on {gate.column} = "
            f"{slice_label(worst['slice'])} is {value:.4g}, which is not {gate.bound} "
            f"({rows} rows){also}."
        )
    return (
        f"{notebook}: fairness gate failed: {gate.key} is {value:.4g}, which is not "
        f"{gate.bound} ({worst.get('groups')} groups of {gate.column}, {rows} rows)."
    )


def _fields(entry: dict[str, object]) -> dict[str, object]:
    keep = ("metric", "column", "slice", "value", "bound", "rows")
    return {k: entry[k] for k in keep}
