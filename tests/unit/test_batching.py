"""Batched validation answers every request exactly as validating it alone does.

Three paths validate a request in the service: the fast path, the batched Pandera call
(``nb2prod_batching.validate_many``, driven by the service's ``Batcher``) and the single
Pandera path (``validate(..., fast=False)``). Each test runs real Pandera on the example
notebooks' schemas, copies of them without coercion, and schemas with custom checks, and
compares every request's frame and failures with those of the single path.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.unit.test_validation import BASE, good_rows, hostile_rows, uncoerced


@pytest.fixture(scope="module")
def modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The bento's validation, fast path and batching modules."""
    from nb2prod.serving import batching, fastpath, validation

    return validation, fastpath, batching


def with_custom_check(make: Any, column: str, check: Any) -> Any:
    """The schema ``make`` builds, with ``check`` added to ``column``: off the fast path."""

    def build() -> Any:
        schema = make()
        return schema.update_column(column, checks=[*schema.columns[column].checks, check])

    return build


SCHEMAS = {
    "churn": BASE["churn"],
    "diabetes": BASE["diabetes"],
    "churn-uncoerced": uncoerced(BASE["churn"]),
    "diabetes-uncoerced": uncoerced(BASE["diabetes"]),
    # an element-wise custom check: batched, never on the fast path
    "churn-custom": with_custom_check(
        BASE["churn"], "tenure_months", pa.Check(lambda v: v != 13, element_wise=True)
    ),
    # a custom check on the whole column: batched, then confirmed on each request's own rows
    "diabetes-column-check": with_custom_check(
        BASE["diabetes"], "age", pa.Check(lambda s: s < 119.5, name="custom_age")
    ),
}


def alone(validation: ModuleType, schema: Any, rows: list, columns: list, lenient: bool) -> Any:
    return validation.validate(schema, rows, columns, fast=False, lenient=lenient)


def assert_same_answer(got: tuple, expected: tuple, rows: list) -> None:
    (frame, failures), (want, want_failures) = got, expected
    assert list(failures) == list(want_failures), rows
    assert failures.total == want_failures.total, rows
    pd.testing.assert_frame_equal(
        frame, want, check_exact=True, check_index_type=True, check_column_type=True
    )
    assert list(frame.dtypes) == list(want.dtypes)


def counting(schema: Any) -> list[int]:
    """Count ``schema``'s Pandera calls: the length of each frame it is given."""
    calls: list[int] = []
    validate = schema.validate

    def spy(frame: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(frame))
        return validate(frame, *args, **kwargs)

    schema.validate = spy
    return calls


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_batched_fast_and_single_paths_agree_on_hostile_requests(modules, name) -> None:
    validation, fastpath, batching = modules
    schema = SCHEMAS[name]()
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    seen = {"batched-clean": 0, "mixed": 0, "fast": 0}

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.lists(
            st.one_of(hostile_rows(columns, good), st.lists(st.sampled_from(good), max_size=3)),
            min_size=2,
            max_size=6,
        ),
        st.booleans(),
    )
    def check(requests: list[list[dict]], lenient: bool) -> None:
        expected = [alone(validation, schema, rows, columns, lenient) for rows in requests]
        got = batching.validate_many(schema, requests, columns, lenient=lenient)
        assert len(got) == len(requests)
        for answer, want, rows in zip(got, expected, requests):
            assert_same_answer(answer, want, rows)
            fast = fastpath.validate_fast(schema, rows, columns)
            if fast is not None:  # the third path: only ever what Pandera accepts, as it does
                seen["fast"] += 1
                assert want[1] == []
                pd.testing.assert_frame_equal(fast, want[0], check_exact=True)
        bad = sum(bool(f) for _, f in expected)
        seen["batched-clean" if bad == 0 else "mixed"] += bad < len(requests)

    check()
    assert seen["batched-clean"] and seen["mixed"], seen
    if name in ("churn-custom", "diabetes-column-check"):
        assert seen["fast"] == 0
    else:
        assert seen["fast"] > 0


@pytest.mark.parametrize(
    "name", ["churn", "churn-uncoerced", "churn-custom", "diabetes", "diabetes-column-check"]
)
def test_good_requests_share_one_pandera_call(modules, name) -> None:
    validation, _, batching = modules
    schema = SCHEMAS[name]()
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    requests = [[good[i % len(good)]] for i in range(32)]
    expected = [alone(validation, schema, rows, columns, False) for rows in requests]
    calls = counting(schema)
    got = batching.validate_many(schema, requests, columns)
    assert calls == [32]
    for answer, want, rows in zip(got, expected, requests):
        assert_same_answer(answer, want, rows)


def test_a_bad_request_gets_its_own_422_and_the_good_ones_beside_it_are_answered(modules) -> None:
    validation, _, batching = modules
    schema = uncoerced(BASE["churn"])()
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    requests = [[good[0]], [{**good[1], "tenure_months": -1}, good[2]], [good[3], good[4]]]
    requests.append([{**good[5], "contract": "weekly", "support_calls": 10**6}])
    calls = counting(schema)
    got = batching.validate_many(schema, requests, columns)
    # one call for all, each bad request alone, the good ones together again
    assert calls == [6, 2, 1, 3]
    assert [len(f) for _, f in got] == [0, 1, 0, 2]
    assert got[1][1][0]["row"] == 0 and got[3][1][0]["row"] == 0
    for answer, rows in zip(got, requests):
        assert_same_answer(answer, alone(validation, schema, rows, columns, False), rows)


def test_a_request_that_would_change_another_s_column_types_is_validated_apart(modules) -> None:
    validation, _, batching = modules
    schema = uncoerced(BASE["churn"])()
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    # 2.0 is a whole number (not refused) that, without coercion, makes its int column float:
    # together it would make the other request's column float too
    requests = [[good[0]], [{**good[1], "support_calls": 2.0}], [good[2]]]
    got = batching.validate_many(schema, requests, columns)
    assert [bool(f) for _, f in got] == [False, True, False]
    assert got[1][1][0]["column"] == "support_calls"
    for answer, rows in zip(got, requests):
        assert_same_answer(answer, alone(validation, schema, rows, columns, False), rows)


def test_a_failure_with_no_row_sends_every_request_alone(modules) -> None:
    validation, _, batching = modules
    schema = BASE["churn"]()  # strict: an unknown key is a failure of the column, not a row
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    requests = [[{**good[0], "extra": 1}], [{**good[1], "extra": 2}]]
    calls = counting(schema)
    got = batching.validate_many(schema, requests, columns)
    assert calls == [2, 1, 1]
    assert all(f and f[0]["row"] is None for _, f in got)
    for answer, rows in zip(got, requests):
        assert_same_answer(answer, alone(validation, schema, rows, columns, False), rows)


ONE = {"a": 1}
CROSS_ROW = {
    "builtin": (pa.DataFrameSchema({"a": pa.Column(int, pa.Check.ge(0))}), ONE, True),
    "element-wise-custom": (
        pa.DataFrameSchema(
            {"a": pa.Column(str, pa.Check(lambda v: len(v) < 5, element_wise=True))}
        ),
        {"a": "x"},
        True,
    ),
    # checks that see a whole column or frame: batched, then confirmed on each request's rows
    "frame-check": (
        pa.DataFrameSchema({"a": pa.Column(int)}, checks=pa.Check(lambda df: True)),
        ONE,
        True,
    ),
    "column-custom": (
        pa.DataFrameSchema({"a": pa.Column(int, pa.Check(lambda s: s >= s.mean()))}),
        ONE,
        True,
    ),
    "unique-values": (
        pa.DataFrameSchema({"a": pa.Column(int, pa.Check.unique_values_eq([1]))}),
        ONE,
        True,
    ),
    # uniqueness: rows unique together are unique alone (duplicates are failures at both)
    "unique": (pa.DataFrameSchema({"a": pa.Column(int, unique=True)}), ONE, True),
    "unique-rows": (pa.DataFrameSchema({"a": pa.Column(int)}, unique=["a"]), ONE, True),
    "datetime": (
        pa.DataFrameSchema({"a": pa.Column("datetime64[ns]")}, coerce=True),
        {"a": "2024-01-02"},
        False,
    ),
    "index": (
        pa.DataFrameSchema({"a": pa.Column(int)}, index=pa.Index(int, unique=True)),
        ONE,
        False,
    ),
    "groupby": (
        pa.DataFrameSchema(
            {"a": pa.Column(int, pa.Check(lambda g: True, groupby="b")), "b": pa.Column(str)}
        ),
        {"a": 1, "b": "x"},
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(CROSS_ROW))
def test_only_schemas_whose_rows_are_coerced_alone_and_not_grouped_are_batched(
    modules, case
) -> None:
    validation, _, batching = modules
    schema, row, batched = CROSS_ROW[case]
    assert batching.batchable(schema) is batched
    columns = list(schema.columns)
    calls = counting(schema)
    got = batching.validate_many(schema, [[row], [row], [row]], columns)
    # (three equal rows: unique fails together, at every row, so each request goes alone)
    unique = case.startswith("unique") and case != "unique-values"
    assert calls == ([3, 1, 1, 1] if unique else [3] if batched else [1, 1, 1])
    schema.validate = type(schema).validate.__get__(schema)  # the spy off, to compare
    for answer in got:
        assert_same_answer(answer, alone(validation, schema, [row], columns, False), [row])


def test_the_batcher_answers_concurrent_requests_each_as_alone(modules) -> None:
    """The service's path: real ``Batcher``, several requests at once, one worker thread."""
    from nb2prod.serving.runtime import Batcher

    validation, _, batching = modules
    schema = SCHEMAS["churn-custom"]()
    columns = list(schema.columns)
    good = good_rows(schema, columns)
    big_bad = [{**good[i % len(good)], "tenure_months": -1} for i in range(1500)]
    requests = [[good[i % len(good)]] for i in range(12)]
    requests[3] = [{**good[0], "tenure_months": 13}]  # the custom check's failure
    requests[7] = big_bad  # past BATCH_MAX_ROWS: alone, with the failure list capped
    batches: list[list[int]] = []

    def run(taken: list[list[dict]]) -> list:
        batches.append([len(rows) for rows in taken])
        return batching.validate_many(schema, taken, columns)

    async def serve() -> list:
        batcher = Batcher(run, batching.BATCH_MAX_ROWS)
        return await asyncio.gather(*(batcher(rows) for rows in requests))

    got = asyncio.run(serve())
    assert any(len(b) > 1 for b in batches), batches
    assert [1500] in batches
    assert sorted(n for b in batches for n in b) == sorted(len(r) for r in requests)
    for answer, rows in zip(got, requests):
        assert_same_answer(answer, alone(validation, schema, rows, columns, False), rows)
    assert got[7][1].total == 1500 and len(got[7][1]) == 1000
    assert [i for i, (_, f) in enumerate(got) if f] == [3, 7]


def test_a_lone_request_is_handed_on_as_validate_built_it(modules) -> None:
    """No concatenation, no split, no copy: the frame is the one Pandera returned."""
    from nb2prod.serving.runtime import Batcher

    _, _, batching = modules
    schema = SCHEMAS["churn-custom"]()
    columns = list(schema.columns)
    rows = good_rows(schema, columns)[:3]
    given_frames, returned = [], []
    validate = schema.validate

    def spy(frame: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        given_frames.append(frame)
        returned.append(validate(frame, *args, **kwargs))
        return returned[-1]

    schema.validate = spy

    async def serve() -> Any:
        batcher = Batcher(lambda taken: batching.validate_many(schema, taken, columns), 1000)
        return await batcher(rows)

    frame, failures = asyncio.run(serve())
    assert failures == []
    assert len(given_frames) == 1 and len(given_frames[0]) == 3
    assert frame is returned[0]


WHOLE_COLUMN = {
    # passes on the three requests together (sum 3), fails on each alone (sum 1)
    "sum": (pa.Check(lambda s: s.sum() >= 3, name="enough"), [[ONE], [ONE], [ONE]], [1, 1, 1]),
    # fails together at the 1 (mean 2), passes alone on each (1 >= 1, 3 >= 3)
    "mean": (pa.Check(lambda s: s >= s.mean(), name="above"), [[ONE], [{"a": 3}]], [0, 0]),
    # a frame check, as @pa.dataframe_check writes it, decided row by row
    "frame": (None, [[ONE], [{"a": 20}], [{"a": 2}]], [0, 1, 0]),
}


@pytest.mark.parametrize("case", sorted(WHOLE_COLUMN))
def test_whole_column_and_frame_checks_are_confirmed_on_each_requests_own_rows(
    modules, case
) -> None:
    validation, _, batching = modules
    check, requests, want_failures = WHOLE_COLUMN[case]
    if check is None:
        schema = pa.DataFrameSchema(
            {"a": pa.Column(int)}, checks=pa.Check(lambda df: df["a"] < 10, name="small")
        )
    else:
        schema = pa.DataFrameSchema({"a": pa.Column(int, check)})
    got = batching.validate_many(schema, requests, ["a"])
    assert [len(f) for _, f in got] == want_failures
    for answer, rows in zip(got, requests):
        assert_same_answer(answer, alone(validation, schema, rows, ["a"], False), rows)
