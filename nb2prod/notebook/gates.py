"""Metric gates: ``{"roc_auc": ">= 0.80"}`` bounds, parsed in one place and checked."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from nb2prod.errors import GateFailed

_BOUND = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


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


def check_gates(
    gates: dict[str, str], metrics: dict[str, float], notebook: str
) -> list[dict[str, object]]:
    """Compare metrics with their gates; raise on the first miss.

    Returns:
        One ``{"metric", "value", "bound", "passed"}`` per gate, for the manifest.

    Raises:
        GateFailed: a gate is malformed, names a metric the notebook does not compute, or
            does not hold.
    """
    results: list[dict[str, object]] = []
    for metric, text in gates.items():
        bound = Bound.parse(text)
        if bound is None:
            raise GateFailed(
                f"{notebook}: gate `{metric}: {text}` is not of the form '>= 0.8'.", metric=metric
            )
        if metric not in metrics:
            raise GateFailed(
                f"{notebook}: gate on `{metric}` cannot be checked: the notebook's metrics are "
                f"{', '.join(metrics) or 'empty'}.",
                metric=metric,
            )
        value = metrics[metric]
        passed = bound.holds(value)
        results.append({"metric": metric, "value": value, "bound": str(bound), "passed": passed})
        if not passed:
            raise GateFailed(
                f"{notebook}: metric gate failed: {metric} = {value:.4g}, which is not {bound}.",
                metric=metric,
                value=value,
                bound=str(bound),
            )
    return results
