"""Batched validation: the rows of concurrent requests in one Pandera call, each answered alone.

Copied into every bento as ``nb2prod_batching.py``: it imports only what a bento ships (numpy,
pandas, pandera, and its sibling ``nb2prod_validation``), never nb2prod. Pandera costs about
the same per call for 1 row as for 32, so the service's validation batcher (a
``nb2prod_runtime.Batcher``, one worker thread) hands the requests the fast path could not
decide to :func:`validate_many`. Pandera stays the judge, and every answer is the one
``validate(..., fast=False)`` gives that request alone: a combined call's frames are kept only
when it finds nothing and each request's rows pass, through Pandera's own ``Check``, the
checks that see a whole column or frame; a request with a failure gets the single path's 422.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

# The single path's module by its name here: ``nb2prod_validation`` beside this one in a
# bento's src/, ``nb2prod.serving.validation`` in nb2prod (a plain import names one only).
validation = importlib.import_module(__name__.rpartition("batching")[0] + "validation")

BATCH_MAX_ROWS = 1000  # rows of concurrent requests in one call; a larger request goes alone
_BATCHABLE: dict[int, tuple[Any, list | None]] = {}


def _per_value(check: Any) -> bool:
    """Pandera decides ``check`` value by value (or row by row): a built-in comparison, or a
    custom check declared ``element_wise``. Its verdict on a request's rows is the same in any
    company."""
    return check.element_wise or (
        check.name in validation.fastpath.PER_VALUE and validation.fastpath.builtin(check)
    )


def _plan(schema: Any) -> list[tuple[Any, str | None]] | None:
    """The checks a combined call's pass does not settle for each request, as ``(check,
    column)`` (``None``: a frame check); None when ``schema`` cannot be batched at all."""
    simple = (
        type(schema).__name__ == "DataFrameSchema"
        and not schema.parsers
        and schema.index is None
        and not schema.add_missing_columns
        and not schema.drop_invalid_rows
    )
    if not simple:
        return None
    confirm: list[tuple[Any, str | None]] = []
    for check in schema.checks:
        if check.groupby is not None:
            return None
        if not _per_value(check):
            confirm.append((check, None))
    for name, column in schema.columns.items():
        dtype = str(column.dtype).lower()
        # dtypes coerced value by value (not datetimes: pandas guesses their format from the
        # first value; not categories: theirs come from the whole column)
        if not (dtype.startswith(("int", "uint", "float", "bool")) or dtype in ("str", "string")):
            return None
        if column.parsers or column.drop_invalid_rows or column.regex:
            return None
        for check in column.checks:
            if check.groupby is not None:
                return None
            if not _per_value(check):
                confirm.append((check, name))
    # Uniqueness needs no confirming: the rows of a combined call that has no duplicate have
    # none alone, and a duplicate across two requests is a failure at both (each then alone).
    return confirm


def _confirmed(plan: list[tuple[Any, str | None]], part: pd.DataFrame) -> bool:
    """Whether Pandera's own checks that see a whole column or frame pass on ``part`` (one
    request's rows of the combined result, as validating it alone gives them): run through
    the ``Check`` as Pandera's backend runs it. Any doubt (an error) says no."""
    for check, column in plan:
        if check.raise_warning:
            continue  # a warning never rejects
        try:
            result = check(part, column) if column is not None else check(part)
            if not bool(np.all(result.check_passed)):
                return False
        except Exception:  # noqa: BLE001 - the single path will say what it is
            return False
    return True


def batchable(schema: Any) -> bool:
    """Whether the rows of several requests may share one Pandera call on ``schema``: every
    row is coerced on its own (no parsers, index, added columns, dropped rows; int, float,
    bool and str columns), and no check groups rows. A custom check that sees a whole column
    or frame (it could look at other rows) is batched too, and confirmed per request on that
    request's own rows (:func:`_confirmed`). Cached per schema."""
    return _cached(schema) is not None


def _cached(schema: Any) -> list[tuple[Any, str | None]] | None:
    key = id(schema)
    if key not in _BATCHABLE or _BATCHABLE[key][0] is not schema:
        _BATCHABLE[key] = (schema, _plan(schema))
    return _BATCHABLE[key][1]


def _at_fault(exc: SchemaError | SchemaErrors, ends: np.ndarray) -> set[int] | None:
    """The requests (by position) that rows of a failure belong to; None when a failure has
    no row (a missing column, a column's dtype: nothing can be attributed)."""
    cases = getattr(exc, "failure_cases", None)
    if not isinstance(cases, pd.DataFrame) or "index" not in cases:
        return None
    rowless = cases["index"].isna()
    if rowless.any():
        value = cases["failure_case"][rowless]
        consequence = value.map(
            lambda v: isinstance(v, str) and v.startswith(validation.CONSEQUENCE)
        )
        if not consequence.all():  # e.g. one request's 2.0 made another's int column float
            return None
    rows = cases["index"][~rowless]
    if rows.empty:
        return None
    return set(np.searchsorted(ends, rows.astype(np.int64).to_numpy(), side="right").tolist())


def _together(
    schema: Any, members: list[tuple[int, Any]], columns: list[str], limit: int
) -> dict[int, tuple[pd.DataFrame, Any]]:
    """The answers to requests whose prepared frames have the same columns and dtypes.

    Their frames go to one call; when it finds nothing, each request gets its rows of the
    result, indexed as alone. When it does, the requests at fault are validated alone (their
    422 is the one they get alone) and the rest together once more; what that does not
    settle, and a failure with no row, is validated alone.
    """
    answers = {}
    for _ in range(2):
        if len(members) < 2:
            break
        frames = [prepared.frame for _, prepared in members]
        ends = np.cumsum([len(frame) for frame in frames])
        try:
            valid = schema.validate(pd.concat(frames, ignore_index=True), lazy=True)
        except (SchemaError, SchemaErrors) as exc:
            at_fault = _at_fault(exc, ends)
            if at_fault is None:
                break
            for k in sorted(at_fault):
                i, prepared = members[k]
                answers[i] = validation.judge(schema, prepared, columns, limit)
            members = [m for k, m in enumerate(members) if k not in at_fault]
            continue
        plan = _cached(schema) or []
        for (i, prepared), start, end in zip(members, [0, *ends[:-1]], ends):
            part = valid.iloc[start:end].reset_index(drop=True)
            if _confirmed(plan, part):
                answers[i] = (validation.ordered(part, columns), validation.Failures())
            else:  # a whole-column or frame check that fails on this request's rows alone
                answers[i] = validation.judge(schema, prepared, columns, limit)
        return answers
    for i, prepared in members:
        answers[i] = validation.judge(schema, prepared, columns, limit)
    return answers


def validate_many(
    schema: Any,
    requests: list[list[dict[str, Any]]],
    columns: list[str],
    *,
    lenient: bool = False,
    limit: int = validation.MAX_FAILURES,
) -> list[tuple[pd.DataFrame, Any]]:
    """``validate(schema, rows, columns, fast=False, ...)`` of each request, in few calls.

    A lone request, and every request of a schema that is not :func:`batchable`, is validated
    alone: its frame is handed on as ``validate`` built it, with no concatenation or copy.
    Otherwise each request is prepared as alone; one with values refused before Pandera (its
    failures are certain) or no rows is judged alone, and the rest, grouped by columns and
    dtypes (so that no request changes another's column types), go to :func:`_together`.
    """
    if len(requests) < 2 or not batchable(schema):
        return [
            validation.validate(schema, rows, columns, fast=False, lenient=lenient, limit=limit)
            for rows in requests
        ]
    answers: dict[int, tuple[pd.DataFrame, Any]] = {}
    groups: dict[tuple, list[tuple[int, Any]]] = {}
    for i, rows in enumerate(requests):
        prepared = validation.prepare(schema, rows, columns, lenient)
        if prepared.refused or not len(prepared.frame):
            answers[i] = validation.judge(schema, prepared, columns, limit)
            continue
        key = (tuple(prepared.frame.columns), tuple(prepared.frame.dtypes))
        groups.setdefault(key, []).append((i, prepared))
    for members in groups.values():
        answers.update(_together(schema, members, columns, limit))
    return [answers[i] for i in range(len(requests))]
