"""The fast validation path decides exactly as Pandera does (and as strict coercion does).

The fast path may only accept, and what it accepts must be what Pandera accepts, as the very
same frame (values, dtypes, column order, index). Anything else it hands to Pandera. Each test
runs both paths on the same rows: the example notebooks' schemas, copies of them without
coercion, and schemas built to cover each check the fast path models (ranges, sets, string
lengths and patterns), on generated and hostile rows.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from types import ModuleType
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from nb2prod.notebook.read import read
from tests.support import ROOT


@pytest.fixture(scope="module")
def validation() -> ModuleType:
    """The validation module every bento ships as ``nb2prod_validation.py``."""
    from nb2prod.serving import validation

    return validation


@pytest.fixture(scope="module")
def fastpath() -> ModuleType:
    """The fast path every bento ships as ``nb2prod_fastpath.py``."""
    from nb2prod.serving import fastpath

    return fastpath


def notebook_schema(name: str, model: str) -> Any:
    """The ``model`` class from the example notebook's schema cells, as a DataFrameSchema."""
    module = ModuleType(f"schema_of_{name}")
    sys.modules[module.__name__] = module  # Pandera resolves the annotations in the module
    for cell in read(ROOT / "notebooks" / f"{name}.ipynb").with_role("schema"):
        exec(compile(cell.source, f"{name}.ipynb", "exec"), module.__dict__)  # noqa: S102
    return getattr(module, model).to_schema()


def covering_schema() -> Any:
    """Every check and dtype the fast path models, nullable and not, not strict."""
    return pa.DataFrameSchema(
        {
            "a": pa.Column(int, [pa.Check.in_range(-5, 5, include_min=False)]),
            "b": pa.Column(float, [pa.Check.gt(-1.5), pa.Check.lt(1e6), pa.Check.ne(0.5)]),
            "c": pa.Column(str, [pa.Check.notin(["bad", ""])], nullable=True),
            "d": pa.Column(float, [pa.Check.isin([1.0, 2.0, 3])], nullable=True),
            "e": pa.Column(int, [pa.Check.eq(7)]),
            "f": pa.Column(str, [pa.Check.isin(["x", "y", "1"])]),
        },
        coerce=True,
    )


def strings_schema() -> Any:
    """Every string check the fast path models, one per column, nullable and not."""
    return pa.DataFrameSchema(
        {
            "code": pa.Column(str, pa.Check.str_matches(r"[A-Z]{2}\d")),
            "name": pa.Column(str, pa.Check.str_length(1, 5), nullable=True),
            "pin": pa.Column(str, pa.Check.str_length(exact_value=3)),
            "word": pa.Column(str, pa.Check.str_contains("ab")),
            "tag": pa.Column(str, pa.Check.str_startswith("t"), nullable=True),
            "end": pa.Column(str, pa.Check.str_endswith("z")),
            "low": pa.Column(str, pa.Check.str_length(max_value=2), nullable=True),
            "n": pa.Column(int, pa.Check.in_range(0, 1000)),  # ints the fast path compares
        },
        coerce=True,
    )


def uncoerced(make: Any) -> Any:
    """A copy of the schema ``make`` builds with coercion off, as Pandera's default has it."""

    def build() -> Any:
        schema = copy.deepcopy(make())
        schema.coerce = False
        for column in schema.columns.values():
            column.coerce = False
        assert not schema.coerce and not any(c.coerce for c in schema.columns.values())
        return schema

    return build


BASE = {
    "churn": lambda: notebook_schema("churn", "Customer"),
    "diabetes": lambda: notebook_schema("diabetes", "Patient"),
    "covering": covering_schema,
    "strings": strings_schema,
}
SCHEMAS = {**BASE, **{f"{name}-uncoerced": uncoerced(make) for name, make in BASE.items()}}

# Hostile values: wrong types, bools, NaN and infinities, huge and negative numbers,
# numbers as strings, nested JSON, nulls.
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-10, 130),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10, 1200),
    st.sampled_from([0, 1, 2, 3, 7, 1.0, 2.0, -0.0, 0.5, 2**53, 2**53 + 1, 2**63, -(2**63) - 1]),
    st.text(max_size=6),
    st.sampled_from(["5", "3.0", "nan", "", "x", "y", "1", "bad", "card", "one-year", "two-year"]),
    st.sampled_from(["month-to-month", "mailed-check", "electronic-check", "bank-transfer"]),
    st.sampled_from(["AB1", "ab1", "AB", "abc", "xaby", "t", "tz", "z", "Z", "123", "12", "\n"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@st.composite
def hostile_rows(draw: st.DrawFn, columns: list[str], good: list[dict[str, Any]]) -> list[dict]:
    """1-6 rows: real rows with some values replaced, some keys dropped or added."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = dict(draw(st.sampled_from(good)))
        for column in draw(st.lists(st.sampled_from(columns), max_size=3)):
            row[column] = draw(HOSTILE)
        if draw(st.integers(0, 9)) == 0:
            row.pop(draw(st.sampled_from(columns)))
        if draw(st.integers(0, 9)) == 0:
            row[draw(st.sampled_from(["extra", "A", columns[0] + " "]))] = 1
        rows.append(row)
    return rows


def good_rows(schema: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Rows Pandera accepts, as a JSON client sends them."""
    frame = schema.example(size=30)[columns]
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return json.loads(json.dumps(rows, default=lambda v: v.item()))


def assert_same_decision(
    validation: ModuleType, schema: Any, columns: list[str], rows: list, lenient: bool = False
) -> bool:
    """Both paths on ``rows``; True when the fast path answered (and matched Pandera)."""
    from nb2prod.serving import fastpath

    fast = fastpath.FastPath.compile(schema, columns)(rows)
    slow, failures = validation.validate(schema, rows, columns, fast=False, lenient=lenient)
    if fast is None:
        return False
    assert failures == [], f"fast path accepted rows Pandera rejects: {rows!r} -> {failures}"
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert list(fast.dtypes) == list(slow.dtypes)
    return True


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_fast_path_compiles_for_the_examples_and_covering_schema(fastpath, name) -> None:
    schema = SCHEMAS[name]()
    assert fastpath.FastPath.compile(schema, list(schema.columns)) is not None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_fast_path_accepts_valid_rows_with_the_frame_pandera_returns(validation, name) -> None:
    schema = SCHEMAS[name]()
    columns = list(schema.columns)
    rows = good_rows(schema, columns)
    for size in (1, 2, len(rows)):
        assert assert_same_decision(validation, schema, columns, rows[:size])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_fast_path_never_accepts_what_pandera_rejects(validation, name) -> None:
    schema = SCHEMAS[name]()
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    answered = []

    @settings(
        max_examples=300 if name in ("churn", "diabetes", "covering") else 100,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # a failure prints its rows; shrinking is slow
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    # untouched rows too: on a wide schema of strings nearly every hostile value fails a check
    @given(
        st.one_of(hostile_rows(columns, good), st.lists(st.sampled_from(good), min_size=1)),
        st.booleans(),
    )
    def check(rows: list[dict], lenient: bool) -> None:
        answered.append(assert_same_decision(validation, schema, columns, rows, lenient))

    check()
    assert any(answered) and not all(answered), "the generator must reach both paths"


def test_service_entry_point_gives_the_same_answer_with_and_without_fast_path(validation) -> None:
    schema = SCHEMAS["churn"]()
    columns = list(schema.columns)
    rows = good_rows(schema, columns)
    fast, fast_failures = validation.validate(schema, rows, columns)
    slow, slow_failures = validation.validate(schema, rows, columns, fast=False)
    assert fast_failures == slow_failures == []
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    bad = [{**rows[0], "tenure_months": -1}, {**rows[1], "contract": None}]
    (_, with_fast), (_, without) = (
        validation.validate(schema, bad, columns),
        validation.validate(schema, bad, columns, fast=False),
    )
    assert with_fast == without and {f["row"] for f in with_fast} == {0, 1}


@pytest.mark.parametrize(
    "schema",
    [
        pa.DataFrameSchema({"a": pa.Column(int, pa.Check(lambda s: s > 0))}, coerce=True),
        pa.DataFrameSchema(
            {"a": pa.Column(int, pa.Check(lambda s: s > 0, name="greater_than"))}, coerce=True
        ),
        pa.DataFrameSchema({"a": pa.Column(int, unique=True)}, coerce=True),
        pa.DataFrameSchema({"a": pa.Column(bool)}, coerce=True),
        pa.DataFrameSchema({"a": pa.Column(int)}, coerce=True, checks=pa.Check(lambda df: True)),
        pa.DataFrameSchema({"a": pa.Column(int, pa.Check.str_length(1))}, coerce=True),
        pa.DataFrameSchema({"a": pa.Column("datetime64[ns]")}, coerce=True),
        pa.DataFrameSchema({"a": pa.Column(str, pa.Check.gt(5))}),  # str against an int
        pa.DataFrameSchema({"a": pa.Column(int, pa.Check.isin("123"))}),  # a str, not a list
        pa.DataFrameSchema({"a": pa.Column(int, pa.Check.notin([2**53 + 1, 0.5]))}),
        pa.DataFrameSchema({"a": pa.Column(str, pa.Check.str_matches(b"x"))}),
        pa.DataFrameSchema({"a": pa.Column(str, pa.Check.unique_values_eq(["x"]))}),
        pa.DataFrameSchema({"a": pa.Column(str, pa.Check(lambda v: True, element_wise=True))}),
    ],
    ids=[
        "custom",
        "custom-named-as-builtin",
        "unique",
        "bool",
        "frame-check",
        "unmodelled-check",
        "datetime",
        "str-compared-with-int",
        "isin-a-string",
        "inexact-statistic",
        "bytes-pattern",
        "cross-row-builtin",
        "element-wise-custom",
    ],
)
def test_fast_path_stays_off_for_what_it_does_not_model(fastpath, schema) -> None:
    assert fastpath.FastPath.compile(schema, ["a"]) is None


@pytest.mark.parametrize("coerce", [True, False])
def test_fast_path_is_not_fooled_by_floats_that_look_like_ints(fastpath, coerce) -> None:
    schema = pa.DataFrameSchema({"a": pa.Column(int, pa.Check.le(2**53))}, coerce=coerce)
    plan = fastpath.FastPath.compile(schema, ["a"])
    assert plan([{"a": 3.0}]) is None  # Pandera decides whether 3.0 is an int
    assert plan([{"a": True}]) is None
    assert plan([{"a": 2**53 + 1}]) is None
    assert plan([{"a": math.nan}]) is None


# --- strict coercion, bounded failures -----------------------------------------------------

STRICT = pa.DataFrameSchema(
    {"n": pa.Column(int, [pa.Check.ge(0)]), "x": pa.Column(float), "s": pa.Column(str)},
    coerce=True,
)
GOOD = {"n": 3, "x": 0.5, "s": "a"}


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("n", 12.7, "has a fraction, in an integer column"),
        ("n", True, "a boolean is not a number"),
        ("n", "12", "a string is not a number"),
        ("x", "NaN", "a string is not a number"),
        ("x", False, "a boolean is not a number"),
        ("x", 2**60, "not exact as a float"),
        ("n", 2**64, "out of range"),
    ],
)
def test_lossy_coercion_is_refused_naming_row_and_column(
    validation, column: str, value: Any, why: str
) -> None:
    rows = [dict(GOOD), {**GOOD, column: value}]
    _, failures = validation.validate(STRICT, rows, list(GOOD))
    assert [(f["row"], f["column"]) for f in failures] == [(1, column)]
    assert failures[0]["check"] == f"lossless_coercion('{STRICT.columns[column].dtype}'): {why}"


def test_exact_values_still_coerce(validation) -> None:
    rows = [{"n": 12.0, "x": 3, "s": "b"}, dict(GOOD)]  # 12.0 is 12; 3 is exactly 3.0
    frame, failures = validation.validate(STRICT, rows, list(GOOD), fast=False)
    assert failures == [] and frame["n"].tolist() == [12, 3] and frame["x"].tolist() == [3.0, 0.5]


def test_lenient_coercion_is_pandera_s_own(validation) -> None:
    rows = [{"n": 12.7, "x": "0.25", "s": "a"}]
    frame, failures = validation.validate(STRICT, rows, list(GOOD), lenient=True)
    assert failures == [] and frame["n"].tolist() == [12] and frame["x"].tolist() == [0.25]


def test_a_400_digit_integer_is_a_failure_not_a_crash(validation) -> None:
    for lenient in (False, True):
        rows = [{**GOOD, "x": 10**401}, {**GOOD, "s": 10**401}]
        _, failures = validation.validate(STRICT, rows, list(GOOD), lenient=lenient)
        assert [(f["row"], f["column"]) for f in failures] == [(0, "x"), (1, "s")]
        assert "(402 digits)" in failures[0]["value"]


def test_a_refused_value_does_not_hide_the_rest_of_its_row(validation) -> None:
    _, failures = validation.validate(STRICT, [{"n": 1.5, "x": 0.5, "s": None}], list(GOOD))
    assert {(f["column"], f["check"].split("(")[0]) for f in failures} == {
        ("n", "lossless_coercion"),
        ("s", "not_nullable"),
    }


def test_failures_are_counted_once_each_and_the_list_is_capped(validation) -> None:
    rows = [{"n": -1, "x": "bad", "s": "a"} for _ in range(3000)]
    _, failures = validation.validate(STRICT, rows, list(GOOD))
    assert failures.total == 6000  # n >= 0 and the string in x, in every row
    assert len(failures) == validation.MAX_FAILURES
    keys = [(f["row"], f["column"], f["check"]) for f in failures]
    assert len(set(keys)) == len(keys)
    assert [f["row"] for f in failures] == sorted(f["row"] for f in failures)
    assert failures[0]["row"] == 0 and failures[-1]["row"] == 499


def test_a_column_json_cannot_type_gets_the_schema_dtype_without_coerce(validation) -> None:
    """All nulls arrive as objects and whole numbers as ints; a schema without coerce gets its
    own dtypes (float NaN, NaT), so the entry point sees what training saw."""
    schema = pa.DataFrameSchema(
        {
            "age": pa.Column(float, pa.Check.ge(0), nullable=True),
            "when": pa.Column("datetime64[ns]", nullable=True),
            "name": pa.Column(str, nullable=True),
            "n": pa.Column(int),
        }
    )
    columns = ["age", "when", "name", "n"]
    for fast in (True, False):
        frame, failures = validation.validate(
            schema, [{"age": None, "when": None, "name": None, "n": 1}], columns, fast=fast
        )
        assert not failures
        assert frame.dtypes.astype(str).to_dict() == {
            "age": "float64",
            "when": "datetime64[ns]",
            "name": "object",
            "n": "int64",
        }
        assert math.isnan(frame.at[0, "age"]) and frame.at[0, "name"] is None  # not "None"
        whole, failures = validation.validate(
            schema, [{"age": 30, "when": None, "name": "a", "n": 2}], columns, fast=fast
        )
        assert not failures and whole["age"].dtype == "float64" and whole.at[0, "age"] == 30.0
    _, failures = validation.validate(
        schema, [{"age": -1, "when": None, "name": None, "n": 1}], columns
    )
    assert [(f["column"], f["check"]) for f in failures] == [("age", "greater_than_or_equal_to(0)")]


@pytest.mark.parametrize("lenient", [False, True])
def test_a_wrong_type_for_a_schema_without_coerce_is_a_failure_naming_row_and_column(
    validation: ModuleType, lenient: bool
) -> None:
    """Without ``coerce`` Pandera reports a wrong dtype for the whole column; that report must
    reach the client (it used to be dropped, and a number reached a text column's code)."""

    class Passenger(pa.DataFrameModel):
        name: pa.typing.Series[str]
        fare: pa.typing.Series[float] = pa.Field(ge=0)

    schema = Passenger.to_schema()
    rows = [{"name": "Braund, Mr. Owen", "fare": 7.25}, {"name": 7, "fare": 8.05}]
    _, failures = validation.validate(schema, rows, ["name", "fare"], lenient=lenient)
    assert [(f["row"], f["column"], f["value"]) for f in failures] == [(1, "name", 7)]
    frame, clean = validation.validate(schema, rows[:1], ["name", "fare"], lenient=lenient)
    assert list(clean) == [] and frame["name"].tolist() == ["Braund, Mr. Owen"]


# --- forms real notebooks use: no coercion, string checks --------------------------------


@pytest.mark.parametrize("coerce", [False, True])
def test_fast_path_answers_for_schemas_without_coercion_with_pandera_s_frame(
    validation, fastpath, coerce
) -> None:
    """Whole numbers in a float column are float64, nulls NaN or None, as the Pandera path."""
    schema = pa.DataFrameSchema(
        {
            "x": pa.Column(float, pa.Check.in_range(0, 10), nullable=True),
            "n": pa.Column(int, pa.Check.isin([1, 2, 3])),
            "s": pa.Column(str, pa.Check.str_length(max_value=3), nullable=True),
        },
        coerce=coerce,
    )
    columns = ["x", "n", "s"]
    for rows in (
        [{"x": 3, "n": 1, "s": "a"}],
        [{"x": None, "n": 2, "s": None}],
        [{"x": 3, "n": 1, "s": None}, {"x": 2.5, "n": 3, "s": "abc"}, {"x": None, "n": 1, "s": ""}],
    ):
        assert assert_same_decision(validation, schema, columns, rows), rows
        assert fastpath.validate_fast(schema, rows, columns)["x"].dtype == "float64"
    # what Pandera must decide: 2.0 in an int column (coerced to 2, or without coercion a
    # float column: refused), a null in an int column, a number in a text column (refused)
    for row, refused in (
        ({"x": 1, "n": 2.0, "s": "a"}, not coerce),
        ({"x": 1, "n": None, "s": "a"}, True),
        ({"x": 1, "n": 1, "s": 5}, True),
    ):
        assert fastpath.validate_fast(schema, [row], columns) is None
        assert bool(validation.validate(schema, [row], columns, fast=False)[1]) == refused, row


STRING_CASES = [
    ("code", "AB1"),
    ("code", "AB1 and more"),  # str.match: anchored at the start only
    ("code", "xAB1"),
    ("code", "ab1"),
    ("code", "AB١"),  # an Arabic-Indic digit is a \d for Python's re
    ("name", "é"),
    ("name", "e\u0301e\u0301e\u0301"),  # six code points: len() counts them, not glyphs
    ("name", ""),
    ("name", "🙂🙂🙂🙂🙂"),
    ("pin", "123"),
    ("pin", "12"),
    ("pin", "1234"),
    ("word", "xaby"),
    ("word", "a b"),
    ("word", "AB"),
    ("tag", "t"),
    ("tag", "T"),
    ("tag", " t"),
    ("end", "z"),
    ("end", "z\n"),
    ("end", "zZ"),
    ("low", ""),
    ("low", "abc"),
]


@pytest.mark.parametrize(("column", "value"), STRING_CASES)
@pytest.mark.parametrize("coerce", [True, False])
def test_string_checks_are_decided_exactly_as_pandera_does(
    validation, fastpath, column, value, coerce
) -> None:
    schema = strings_schema() if coerce else uncoerced(strings_schema)()
    columns = list(schema.columns)
    good = {"code": "XY9", "name": "a", "pin": "000", "word": "ab", "tag": "t", "end": "z"}
    rows = [{**good, "low": None, "n": 1, column: value}]
    fast = fastpath.validate_fast(schema, rows, columns)
    slow, failures = validation.validate(schema, rows, columns, fast=False)
    # exact: the fast path answers whenever Pandera accepts, and only then
    assert (fast is not None) == (failures == []), (column, value, failures)
    if fast is not None:
        pd.testing.assert_frame_equal(fast, slow, check_exact=True)
