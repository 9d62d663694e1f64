"""The fast path over whole frames, for batch scoring (``FastPath.passing``, ``batch_path``,
``nb2prod_validation.requests``): a row passes only when the plan accepts it as a request's
JSON, and a frame every row of which passes is one Pandera accepts, as the same frame. With
checks set aside (custom, frame-wide), a request of rows is accepted only when Pandera's own
checks pass on that very request's frame, so every verdict is the one the request gets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nb2prod.serving import fastpath, validation
from tests.unit.test_validation import good_rows, notebook_schema


def typed_schema(coerce: bool = False) -> Any:
    """Every check the plan models on each dtype, without coercion (Pandera's default) or
    with it."""
    return pa.DataFrameSchema(
        {
            "a": pa.Column(int, [pa.Check.in_range(-5, 5, include_min=False)]),
            "b": pa.Column(float, [pa.Check.gt(-1.5), pa.Check.lt(1e6), pa.Check.ne(0.5)]),
            "c": pa.Column(str, [pa.Check.notin(["bad", ""])], nullable=True),
            "d": pa.Column(float, [pa.Check.isin([1.0, 2.0, 3])], nullable=True),
            "e": pa.Column(int, [pa.Check.eq(7), pa.Check.le(7), pa.Check.ge(-(2**40))]),
            "f": pa.Column(str, [pa.Check.isin(["x", "y", "1"])]),
            "g": pa.Column(str, [pa.Check.str_matches(r"[A-Z]{2}\d"), pa.Check.str_length(3)]),
            "h": pa.Column(str, [pa.Check.str_contains("ab"), pa.Check.str_endswith("z")]),
            "i": pa.Column(float, [pa.Check.in_range(0, 1, include_max=False)], nullable=True),
            "j": pa.Column(int, [pa.Check.notin([3, 4.0]), pa.Check.lt(2**53)], nullable=True),
        },
        strict=True,
        coerce=coerce,
    )


COLUMNS = list("abcdefghij")
INTS = st.one_of(st.integers(-7, 9), st.sampled_from([2**53, 2**53 + 1, -(2**62), 2**40]))
FLOATS = st.one_of(
    st.none(),
    st.floats(-2, 4, allow_nan=False),
    st.sampled_from([-1.5, 0.5, 1.0, 2.0, 3.0, 0.0, -0.0, 1e6, math.inf, -math.inf]),
)
STRS = st.one_of(
    st.none(),
    st.text(max_size=4),
    st.sampled_from(["x", "y", "1", "bad", "", "AB1", "ab1", "AB12", "xabz", "abz", "ab"]),
)
VALUES = {"a": INTS, "e": INTS, "j": st.one_of(st.none(), INTS)}
VALUES |= {c: FLOATS for c in "bdi"} | {c: STRS for c in "cfgh"}
ARROW = {"a": "int64", "e": "int64", "j": "int64", "b": "float64", "d": "float64"}
ARROW |= {"i": "float64", "c": "string", "f": "string", "g": "string", "h": "string"}


def table_of(rows: list[dict[str, Any]]) -> pa_arrow.Table:
    fields = [pa_arrow.field(c, ARROW[c]) for c in COLUMNS]
    return pa_arrow.Table.from_pylist(rows, schema=pa_arrow.schema(fields))


def frame_of(table: pa_arrow.Table) -> pd.DataFrame:
    """The frame batch scoring builds from arrow (``Scorer._frame``)."""
    frame = table.to_pandas()
    for name in ("c", "f", "g", "h"):
        frame[name] = frame[name].astype(object)
    return frame


@st.composite
def tables(draw: st.DrawFn) -> pa_arrow.Table:
    good = {"a": 1, "b": 2.5, "c": "ok", "d": 2.0, "e": 7, "f": "x", "g": "AB1", "h": "abz"}
    good |= {"i": 0.25, "j": 1}
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        row = dict(good)
        for column in draw(st.lists(st.sampled_from(COLUMNS), max_size=3)):
            row[column] = draw(VALUES[column])
        rows.append(row)
    return table_of(rows)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(tables(), st.booleans())
def test_a_row_passes_exactly_when_the_plan_accepts_its_json_and_pandera_agrees(
    table, coerce: bool
) -> None:
    schema = typed_schema(coerce)
    plan = fastpath.FastPath.compile(schema, COLUMNS)
    frame = frame_of(table)
    passed = plan.passing(frame)
    if passed is None:  # a column is not of its dtype (a null in an int column): Pandera's
        assert frame["j"].dtype != np.int64
        return
    rows = table.to_pylist()
    # Then each row passes exactly when the request's fast path accepts it alone
    assert passed.tolist() == [plan([row]) is not None for row in rows]
    assert plan.accepts(frame) == bool(passed.all())
    if passed.all():
        # and a frame of rows that all pass is one Pandera accepts, as that very frame, and
        # the frame the request's way gives for the same rows
        pd.testing.assert_frame_equal(schema.validate(frame), frame, check_exact=True)
        slow, failures = validation.validate(schema, rows, COLUMNS, fast=False)
        assert failures == []
        pd.testing.assert_frame_equal(slow, frame, check_exact=True)
    else:  # no row Pandera rejects passes (the plan may fail more: an int past 2**53)
        _, failures = validation.validate(schema, rows, COLUMNS, fast=False)
        assert {f["row"] for f in failures} <= set(np.flatnonzero(~passed))


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("a", -5, "in_range excludes its minimum"),
        ("a", 2**53 + 1, "an int past 2**53"),
        ("b", 0.5, "not_equal_to"),
        ("b", math.inf, "not finite"),
        ("b", None, "a null where none is allowed"),
        ("c", "bad", "notin"),
        ("d", 2.5, "isin, a float column"),
        ("f", "z", "isin, a str column (a category)"),
        ("f", None, "a null in a str column that allows none"),
        ("g", "AB", "str_length"),
        ("g", "ab1", "str_matches"),
        ("h", "abx", "str_contains passes, str_endswith fails"),
        ("i", 1.0, "in_range excludes its maximum"),
        ("j", 4, "notin, an int equal to a float"),
    ],
)
def test_one_failing_value_fails_its_row_only(column: str, value: Any, why: str) -> None:
    plan = fastpath.FastPath.compile(typed_schema(), COLUMNS)
    good = {"a": 1, "b": 2.5, "c": None, "d": None, "e": 7, "f": "1", "g": "ZZ9", "h": "abz"}
    good |= {"i": None, "j": 2**40}
    frame = frame_of(table_of([good, {**good, column: value}, good]))
    assert plan.passing(frame).tolist() == [True, False, True], why
    assert not plan.accepts(frame)


def test_a_column_not_of_its_very_dtype_is_left_to_pandera() -> None:
    plan = fastpath.FastPath.compile(typed_schema(), COLUMNS)
    good = {"a": 1, "b": 2.5, "c": "ok", "d": 2.0, "e": 7, "f": "x", "g": "AB1", "h": "abz"}
    good |= {"i": 0.25, "j": 1}
    frame = frame_of(table_of([good, good]))
    assert plan.accepts(frame)
    nullable_int = frame.astype({"j": "Int64"})  # pandas' nullable ints: not int64
    assert plan.passing(nullable_int) is None
    as_float = frame.astype({"a": "float64"})
    assert plan.passing(as_float) is None
    categorical = frame.astype({"f": "category"})
    assert plan.passing(categorical) is None
    subclass = frame.copy()
    subclass.at[0, "f"] = type("Text", (str,), {})("x")  # equal to "x", not a str
    assert plan.passing(subclass) is None
    assert plan.passing(frame[COLUMNS[::-1]]) is None  # another column order


@pytest.mark.parametrize(("name", "model"), [("churn", "Customer"), ("diabetes", "Patient")])
def test_the_examples_valid_rows_pass_as_one_frame(name: str, model: str) -> None:
    schema = notebook_schema(name, model)
    schema.coerce = False
    for column in schema.columns.values():
        column.coerce = False
    columns = list(schema.columns)
    plan = fastpath.FastPath.compile(schema, columns)
    rows = good_rows(schema, columns)  # as JSON; through arrow, as batch scoring reads them
    frame = pa_arrow.Table.from_pylist(rows).to_pandas()
    assert plan.accepts(frame)
    pd.testing.assert_frame_equal(schema.validate(frame), frame, check_exact=True)


# -- checks set aside -----------------------------------------------------------------------


def aside_schema() -> Any:
    """Bookings' kind of schema: built-in checks, plus a custom column check that looks at
    its company (a fee of 50 or more only in a request of more than 10 fees) and a
    frame-wide one, no coercion."""
    return pa.DataFrameSchema(
        {
            "adults": pa.Column(int, [pa.Check.in_range(1, 10)]),
            "children": pa.Column(int, [pa.Check.ge(0)]),
            "date": pa.Column(str, [pa.Check(lambda s: s.str.len() == 10, name="is_a_date")]),
            "fee": pa.Column(
                float, [pa.Check(lambda s: (s < 50) | (s.count() > 10))], nullable=True
            ),
        },
        checks=[pa.Check(lambda df: df["adults"] + df["children"] <= 12, name="room")],
        strict=True,
    )


def test_checks_set_aside_are_run_on_each_request_and_decide_as_it_does() -> None:
    schema = aside_schema()
    columns = list(schema.columns)
    assert fastpath.FastPath.compile(schema, columns) is None  # never the request's fast path
    plan = fastpath.batch_path(schema, columns)
    assert [getattr(c, "name", None) for _, c in plan.aside] == ["room", "is_a_date", "<lambda>"]
    n = 23
    rows = [
        {"adults": 2, "children": 1, "date": "2026-12-01", "fee": float(i % 40)} for i in range(n)
    ]
    rows[2]["children"] = 11  # room: 13 people (frame-wide)
    rows[9]["date"] = "tomorrow"  # a custom column check
    rows[13]["adults"] = 0  # a built-in check
    rows[21]["fee"] = None  # a null where allowed: the company check ignores it
    rows[16]["fee"] = 60.0  # fails in a request of 5 rows, passes in the whole frame
    table = pa_arrow.Table.from_pylist(rows)
    frame = table.to_pandas()
    # When requests of 5 rows are judged
    accepted, rest = validation.requests(plan, frame, np.ones(n, dtype=bool), 5)
    # Then the requests holding a failing row go the request's way, whole and in order
    assert rest == list(range(20))
    assert [p for _, p in accepted] == [list(range(20, 23))]
    # and each accepted request is one the request's way accepts, as the same frame;
    # each other one it rejects
    for start in range(0, n, 5):
        part = rows[start : start + 5]
        slow, failures = validation.validate(schema, part, columns)
        found = [f for f, p in accepted if p[0] == start]
        assert bool(found) == (failures == [])
        if found:
            pd.testing.assert_frame_equal(found[0], slow, check_exact=True)
    # the company check passes on the whole frame: one whole-frame verdict would have
    # accepted row 16, which its own request rejects
    assert schema.columns["fee"].checks[0](frame["fee"]).check_passed
    # and a row not sure (its JSON differs from its arrow value) keeps its request out
    sure = np.ones(n, dtype=bool)
    sure[20] = False
    accepted, rest = validation.requests(plan, frame, sure, 5)
    assert accepted == [] and rest == list(range(n))


def test_a_check_set_aside_that_raises_or_warns_never_accepts() -> None:
    raises = pa.DataFrameSchema({"x": pa.Column(int, pa.Check(lambda s: s.no_such_method()))})
    warns = pa.DataFrameSchema({"x": pa.Column(int, pa.Check(lambda s: s > 5, raise_warning=True))})
    frame = pd.DataFrame({"x": [1, 2, 3]})
    for schema in (raises, warns):
        plan = fastpath.batch_path(schema, ["x"])
        assert plan.passing(frame).all() and not plan.accepts(frame)
        assert validation.requests(plan, frame, np.ones(3, dtype=bool), 2) == ([], [0, 1, 2])
    grouped = pa.DataFrameSchema(
        {"x": pa.Column(int, pa.Check(lambda g: True, groupby="y")), "y": pa.Column(int)}
    )
    assert fastpath.batch_path(grouped, ["x", "y"]) is None
