"""Metric gates: one parser for the build and for ``nb2prod monitor``."""

from __future__ import annotations

import pytest

from nb2prod.errors import GateFailed
from nb2prod.notebook.gates import Bound, check_gates


def test_gates_parse_and_compare() -> None:
    assert check_gates({"auc": ">= 0.8"}, {"auc": 0.9}, "n.ipynb")[0]["passed"] is True
    with pytest.raises(GateFailed, match=r"metric gate failed: auc = 0.7, which is not >= 0.8"):
        check_gates({"auc": ">= 0.8"}, {"auc": 0.7}, "n.ipynb")
    with pytest.raises(GateFailed, match="cannot be checked"):
        check_gates({"f1": "> 0.5"}, {"auc": 0.7}, "n.ipynb")
    with pytest.raises(GateFailed, match="not of the form"):
        check_gates({"auc": "at least 0.8"}, {"auc": 0.9}, "n.ipynb")


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [(">= 0.8", 0.8, True), ("> 0.8", 0.8, False), ("<= 1e-3", 0.0005, True), ("== 1", 1.0, True)],
)
def test_a_bound_parses_and_holds(text: str, value: float, holds: bool) -> None:
    bound = Bound.parse(text)
    assert bound is not None and bound.holds(value) is holds


@pytest.mark.parametrize("text", ["at least 0.8", "0.8", ">=", ">= x", ""])
def test_anything_else_is_not_a_bound(text: str) -> None:
    assert Bound.parse(text) is None
