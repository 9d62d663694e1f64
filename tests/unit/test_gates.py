"""Metric gates: one parser for check, the build and ``nb2prod monitor``; slice and fairness
gates on the evaluation data; what ``nb2prod check`` says about gate names."""

from __future__ import annotations

import json
import re

import pytest

from nb2prod.errors import GateFailed
from nb2prod.notebook.check import check
from nb2prod.notebook.gates import Bound, check_gates, parse_gate
from tests.support import NOTEBOOKS


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


# --- gate names: plain, slice, fairness and MetricFrame group gates -------------------------


@pytest.mark.parametrize(
    ("key", "kind", "metric", "column", "stat"),
    [
        ("roc_auc", "plain", "roc_auc", None, None),
        ("my own score", "plain", "my own score", None, None),  # any key of the metrics dict
        ("roc_auc[contract]", "slice", "roc_auc", "contract", None),
        ("auc[ contract ]", "slice", "roc_auc", "contract", None),  # alias, spaces
        ("mean_absolute_error[sex]", "slice", "mae", "sex", None),
        (
            "demographic_parity_difference[gender]",
            "fairness",
            "demographic_parity_difference",
            "gender",
            None,
        ),
        ("equalized_odds_ratio[gender]", "fairness", "equalized_odds_ratio", "gender", None),
        ("accuracy_difference[gender]", "group", "accuracy", "gender", "difference"),
        ("roc_auc_ratio[payment method]", "group", "roc_auc", "payment method", "ratio"),
    ],
)
def test_gate_names_parse(key: str, kind: str, metric: str, column: str, stat: str) -> None:
    gate = parse_gate(key, ">= 0.5")
    assert (gate.kind, gate.metric, gate.column, gate.stat, gate.problem) == (
        kind,
        metric,
        column,
        stat,
        None,
    )
    assert gate.on_evaluation is (kind != "plain")


@pytest.mark.parametrize(
    ("key", "code", "says"),
    [
        ("roc_acu[contract]", "unknown-gate-metric", "did you mean `roc_auc`?"),
        ("demographic_parity[gender]", "unknown-gate-metric", "did you mean `demographic_parity_"),
        ("wobble[x]", "unknown-gate-metric", "known: roc_auc, accuracy"),
        ("roc_auc[contract", "bad-gate", "is not of the form `metric` or `metric[column]`"),
        ("roc_auc[]", "bad-gate", "is not of the form `metric` or `metric[column]`"),
    ],
)
def test_a_bad_gate_name_is_a_problem_with_a_code(key: str, code: str, says: str) -> None:
    gate = parse_gate(key, ">= 0.5")
    assert gate.problem is not None and gate.problem[0] == code and says in gate.problem[1]
    with pytest.raises(GateFailed, match=re.escape(says)):
        check_gates({key: ">= 0.5"}, {}, "n.ipynb", lambda g: [])


def _slices(*values: tuple[object, float | None, int]):
    return lambda gate: [
        {"slice": s, "value": v, "rows": n, "note": None if v is not None else "one class"}
        for s, v, n in values
    ]


def test_a_slice_gate_passes_when_every_slice_does_and_records_each() -> None:
    evaluate = _slices(("one-year", 0.8, 100), ("two-year", 0.75, 50))
    results = check_gates({"roc_auc[contract]": ">= 0.7"}, {}, "churn.ipynb", evaluate)
    assert [
        (r["metric"], r["measure"], r["column"], r["slice"], r["passed"], r["rows"])
        for r in results
    ] == [
        ("roc_auc[contract]", "roc_auc", "contract", "one-year", True, 100),
        ("roc_auc[contract]", "roc_auc", "contract", "two-year", True, 50),
    ]


def test_a_failing_slice_gate_names_the_worst_slice() -> None:
    evaluate = _slices(("a", 0.69, 10), ("two-year", 0.61, 412), ("c", 0.9, 5))
    with pytest.raises(GateFailed) as info:
        check_gates({"roc_auc[contract]": ">= 0.70"}, {}, "churn.ipynb", evaluate)
    assert str(info.value) == (
        "churn.ipynb: slice gate failed: roc_auc on contract = 'two-year' is 0.61, which is "
        "not >= 0.7 (412 rows); 1 more slice(s) of contract fail too."
    )
    assert info.value.fields["slice"] == "two-year" and info.value.fields["column"] == "contract"


def test_an_undefined_slice_is_skipped_with_its_note_unless_all_are() -> None:
    evaluate = _slices(("a", 0.8, 10), ("b", None, 3))
    results = check_gates({"roc_auc[c]": ">= 0.7"}, {}, "n.ipynb", evaluate)
    assert [(r["slice"], r["passed"], r["note"]) for r in results] == [
        ("a", True, None),
        ("b", None, "one class"),
    ]
    with pytest.raises(GateFailed, match=r"gate `roc_auc\[c\]` cannot be checked: one class\."):
        check_gates({"roc_auc[c]": ">= 0.7"}, {}, "n.ipynb", _slices(("b", None, 3)))


def test_a_bracketed_gate_without_evaluation_data_says_which_setting() -> None:
    with pytest.raises(GateFailed, match=r"set nb2prod.evaluation to the names"):
        check_gates({"roc_auc[contract]": ">= 0.7"}, {"roc_auc": 0.9}, "n.ipynb")


def test_a_fairness_gate_failure_names_the_column_and_groups() -> None:
    def evaluate(gate):
        return [{"slice": None, "value": 0.31, "rows": 600, "groups": 2, "note": None}]

    with pytest.raises(GateFailed) as info:
        check_gates({"demographic_parity_difference[gender]": "<= 0.1"}, {}, "n.ipynb", evaluate)
    assert str(info.value) == (
        "n.ipynb: fairness gate failed: demographic_parity_difference[gender] is 0.31, which "
        "is not <= 0.1 (2 groups of gender, 600 rows)."
    )


def test_plain_gates_keep_their_entries_exactly() -> None:
    results = check_gates({"auc": ">= 0.8"}, {"auc": 0.9}, "n.ipynb", _slices(("a", 0.1, 1)))
    assert results == [{"metric": "auc", "value": 0.9, "bound": ">= 0.8", "passed": True}]


# --- nb2prod check: gate names and the evaluation/promotion settings, statically ---------


def _churn(settings: dict, replace: tuple[str, str] | None = None) -> list[tuple]:
    content = json.loads((NOTEBOOKS / "churn.ipynb").read_text(encoding="utf-8"))
    content["metadata"]["nb2prod"] = settings
    if replace:
        for cell in content["cells"]:
            cell["source"] = "".join(cell["source"]).replace(*replace)
    report = check(NOTEBOOKS / "churn.ipynb", content=content)
    return [(f.code, f.name, f.cell_index, f.message) for f in report.findings]


def test_good_slice_and_fairness_gates_pass_check() -> None:
    gates = {"roc_auc[contract]": ">= 0.7", "accuracy_difference[payment_method]": "<= 0.2"}
    assert _churn({"gates": gates}) == []
    report = check(NOTEBOOKS / "churn.ipynb")
    assert report.plan.evaluation == {"X": "X_test", "y": "y_test", "required": False}


@pytest.mark.parametrize(
    ("settings", "code", "name", "message"),
    [
        (
            {"gates": {"roc_acu[contract]": ">= 0.7"}},
            "unknown-gate-metric",
            "roc_acu[contract]",
            (
                "churn.ipynb: gate `roc_acu[contract]` names `roc_acu`, which is no metric nb2prod "
                "computes on evaluation data; did you mean `roc_auc`?"
            ),
        ),
        (
            {"gates": {"roc_auc[contrakt]": ">= 0.7"}},
            "gate-column",
            "roc_auc[contrakt]",
            (
                "churn.ipynb: gate `roc_auc[contrakt]` groups by `contrakt`, which is not a column "
                "of the input schema Customer; did you mean `contract`?"
            ),
        ),
        (
            {"gates": {"roc_auc[contract]": ">= 0.7"}, "evaluation": {}},
            "gate-no-evaluation",
            "roc_auc[contract]",
            (
                "churn.ipynb: gate `roc_auc[contract]` is computed on evaluation data, and there is "
                "none: nb2prod.evaluation is {} (none); set nb2prod.evaluation to the held-out rows "
                'and outcomes (such as {"X": "X_test", "y": "y_test"}).'
            ),
        ),
        (
            {"gates": {"demographic_parity_difference[contract]": "<= 0.1", "r2[contract]": "> 0"}},
            "gate-task",
            "r2[contract]",
            (
                "churn.ipynb: gates `demographic_parity_difference[contract]` (a classifier's "
                "metric) and `r2[contract]` (a regressor's) cannot both be computed for one model."
            ),
        ),
        (
            {"evaluation": {"X": "X_holdout", "y": "y_test"}},
            "missing-evaluation",
            "nb2prod.evaluation",
            (
                "churn.ipynb: notebook setting nb2prod.evaluation names `X_holdout`, which no cell "
                "assigns; assign the held-out rows and outcomes, or set nb2prod.evaluation to the "
                "names your notebook uses."
            ),
        ),
        (
            {"evaluation": "X_test"},
            "bad-setting",
            "nb2prod.evaluation",
            (
                "churn.ipynb: notebook setting nb2prod.evaluation must be a mapping of X and y to "
                'Python variable names (such as {"X": "X_test", "y": "y_test"}), or {} for none, '
                "not 'X_test'."
            ),
        ),
        (
            {"promotion": {"metric": "roc_auc", "min_delta": "0.01"}},
            "bad-setting",
            "nb2prod.promotion",
            (
                "churn.ipynb: notebook setting nb2prod.promotion must be a mapping with a metric "
                'name and a number min_delta (such as {"metric": "roc_auc", "min_delta": 0.01}), '
                "not {'metric': 'roc_auc', 'min_delta': '0.01'}."
            ),
        ),
        (
            {"promotion": {"metric": "rocauc", "min_delta": 0.01}},
            "bad-setting",
            "nb2prod.promotion",
            (
                "churn.ipynb: notebook setting nb2prod.promotion.metric is `rocauc`, which is no "
                "metric nb2prod computes on evaluation data; did you mean `roc_auc`?"
            ),
        ),
    ],
)
def test_check_finds_each_bad_gate_or_setting(
    settings: dict, code: str, name: str, message: str
) -> None:
    assert _churn(settings) == [(code, name, None, message)]


def test_without_the_default_names_there_is_no_evaluation_data_and_no_error() -> None:
    found = _churn({}, replace=("X_test", "X_hold"))
    assert found == []
    found = _churn({"gates": {"roc_auc[contract]": ">= 0.7"}}, replace=("X_test", "X_hold"))
    assert [(c, n) for c, n, _, _ in found] == [("gate-no-evaluation", "roc_auc[contract]")]
    assert "no cell assigns X_test and y_test" in found[0][3]


def test_explicit_evaluation_names_that_exist_are_required_at_run_time() -> None:
    content = json.loads((NOTEBOOKS / "churn.ipynb").read_text(encoding="utf-8"))
    content["metadata"]["nb2prod"] = {"evaluation": {"X": "X_test", "y": "y_test"}}
    report = check(NOTEBOOKS / "churn.ipynb", content=content)
    assert report.ok and report.plan.evaluation == {"X": "X_test", "y": "y_test", "required": True}
