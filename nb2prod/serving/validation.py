"""Request validation, shared by the service, the generated tests and batch scoring.

Copied into every bento as ``nb2prod_validation.py``: it imports only what a bento ships
(numpy, pandas, pandera, and its sibling ``nb2prod_fastpath``), never nb2prod. Its cost is
linear in the rows and failures of a request, and a request's failure list is capped
(``MAX_FAILURES``), so no single request can hold the service for long or make its answer
unbounded. Pandera is the judge: ``validate`` words every 422 (``prepare`` then ``judge``,
which ``nb2prod_batching`` also uses to validate concurrent requests in one call).
"""

from __future__ import annotations

import importlib
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

# The fast path's module by its name here: ``nb2prod_fastpath`` beside ``nb2prod_validation``
# in a bento's src/, ``nb2prod.serving.fastpath`` in nb2prod (a plain import names one only).
fastpath = importlib.import_module(__name__.rpartition("validation")[0] + "fastpath")

# A check that fails because an earlier dtype check failed (e.g. ">= 0" on a column holding
# "abc") is a consequence, not a finding of its own.
CONSEQUENCE = ("TypeError(", "ValueError(")
_COLUMN_CHECKS = ("column_in_dataframe", "column_in_schema")


def json_value(value: Any) -> Any:
    """A failure value as plain JSON: numpy scalars unwrapped, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return str(value)  # a list or an object sent where a value belongs


MAX_FAILURES = 1000  # failures listed in one answer; the total is always counted
_INT64 = 2**63 - 1
_EXACT_INT = 2**53  # past this, not every int is a float
_TOO_BIG = 10**308  # past float64: no column can hold it


class Failures(list):
    """A request's schema failures, in row order, at most ``limit`` of them; ``total`` counts
    them all. Each is ``{"row", "column", "check", "value"}``; ``row`` is the request's."""

    total: int = 0


class _Collector:
    """Failures keyed on (row, column, check): linear in their number, each counted once."""

    def __init__(self) -> None:
        self.found: dict[tuple[Any, Any, str], dict[str, Any]] = {}

    def add(self, failure: dict[str, Any]) -> None:
        self.found.setdefault((failure["row"], failure["column"], failure["check"]), failure)

    def result(self, limit: int) -> Failures:
        ordered = sorted(
            self.found.values(),
            key=lambda f: (f["row"] is not None, f["row"] or 0, str(f["column"]), f["check"]),
        )
        out = Failures(ordered[:limit])
        out.total = len(ordered)
        return out


def _kind(dtype: Any) -> str | None:
    text = str(dtype).lower()
    if text.startswith(("int", "uint")):
        return "int"
    if text.startswith("float"):
        return "float"
    return "str" if text in ("str", "string") else None


def _json_type(value: Any) -> str:
    kinds = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return kinds.get(type(value), type(value).__name__)


def _lossy(value: Any, kind: str | None) -> str | None:
    """Why coercing ``value`` into a column of ``kind`` would change it, or None.

    Pandera's coercion turns 12.7 into 12, ``true`` into 1, ``"12"`` into 12 and ``"NaN"``
    into a null; a client that sent those meant something else, so they are refused.
    """
    if value is None:
        return None
    if kind == "str":  # unchecked, a number would reach the entry point in a text column
        return None if isinstance(value, str) else f"not a string (a JSON {_json_type(value)})"
    if isinstance(value, bool):
        return "a boolean is not a number" if kind else None
    if isinstance(value, int):
        if abs(value) >= _TOO_BIG or (kind == "int" and abs(value) > _INT64):
            return "out of range"
        if kind == "float" and abs(value) > _EXACT_INT:
            return "not exact as a float"
        return None
    if kind == "int" and isinstance(value, float):
        return None if value.is_integer() else "has a fraction, in an integer column"
    if kind and isinstance(value, str):
        return "a string is not a number"
    return None


def _strict(schema: Any, rows: list[dict[str, Any]], lenient: bool, found: _Collector) -> set[int]:
    """Check values that coercion would change (all of them unless ``lenient``) and those no
    column can hold; return the rows at fault."""
    kinds = {name: _kind(column.dtype) for name, column in schema.columns.items()}
    bad = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        for name, value in row.items():
            kind = kinds.get(name)
            if lenient and not (isinstance(value, int) and abs(value) >= _TOO_BIG):
                continue
            why = _lossy(value, kind)
            if why is not None:
                dtype = str(schema.columns[name].dtype) if name in schema.columns else "value"
                check = f"lossless_coercion('{dtype}'): {why}"
                found.add({"row": i, "column": name, "check": check, "value": _shown(value)})
                bad.add((i, name))
    return bad


def _shown(value: Any) -> Any:
    value = json_value(value)
    return (
        f"{str(value)[:40]}... ({len(str(value))} digits)"
        if isinstance(value, int) and abs(value) >= _TOO_BIG
        else value
    )


def _failures(
    exc: SchemaError | SchemaErrors, positions: pd.Index, schema: Any
) -> list[dict[str, Any]]:
    cases = getattr(exc, "failure_cases", None)
    if not isinstance(cases, pd.DataFrame):
        return [
            {
                "row": None,
                "column": getattr(exc, "column_name", None),
                "check": str(exc),
                "value": None,
            }
        ]
    found = []
    for case in cases.to_dict(orient="records"):
        check, value, index = str(case.get("check")), case.get("failure_case"), case.get("index")
        if isinstance(value, str) and value.startswith(CONSEQUENCE) and index is None:
            continue
        column = case.get("column")
        if check in _COLUMN_CHECKS:
            column, value = value, None
        coerced = schema.coerce or getattr(schema.columns.get(column), "coerce", False)
        if check.startswith("dtype(") and coerced:
            continue  # reported as the coerce_dtype failure on the same cell
        row = None if index is None or pd.isna(index) else int(positions[int(index)])
        found.append({"row": row, "column": column, "check": check, "value": json_value(value)})
    return found


def _schema_dtypes(schema: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast the columns JSON cannot type to the schema's dtype, where no value changes.

    JSON nulls alone make an object column of ``None``, and whole numbers alone an int
    column; a schema without ``coerce`` would see neither as its float column, and the entry
    point would get objects where training had float NaN (``np.isnan`` raises on them). Only
    dtypes whose null survives the cast are cast (``None`` as ``str`` is "None"), and ints only
    into floats (``_strict`` has refused those past 2**53).
    """
    types = pd.api.types
    for name, column in schema.columns.items():
        target = getattr(column.dtype, "type", None)
        if name not in frame.columns or target is None:
            continue
        values = frame[name]
        keeps_null = (
            types.is_float_dtype(target)
            or types.is_datetime64_any_dtype(target)
            or types.is_timedelta64_dtype(target)
            or (types.is_extension_array_dtype(target) and not types.is_string_dtype(target))
        )
        all_null = values.dtype == object and keeps_null and values.isna().all()
        whole = types.is_float_dtype(target) and types.is_integer_dtype(values.dtype)
        if all_null or whole:
            try:
                frame[name] = values.astype(target)
            except (TypeError, ValueError):
                continue
    return frame


class Prepared(NamedTuple):
    """One request as Pandera is to see it: its frame, the cells refused before (set to null
    in the frame), and the failures found so far (those refusals)."""

    frame: pd.DataFrame
    refused: set
    found: _Collector


def prepare(
    schema: Any, rows: list[dict[str, Any]], columns: list[str], lenient: bool = False
) -> Prepared:
    """The frame Pandera is given for ``rows``: values that coercion would change (all of
    them unless ``lenient``) are refused, and the columns JSON cannot type cast."""
    found = _Collector()
    refused = _strict(schema, rows, lenient, found)
    if refused:  # validate the rest of those rows; the refused cells are their failure
        rows = list(rows)
        for i, name in refused:
            rows[i] = {**rows[i], name: None}
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=columns)
    frame.index = pd.RangeIndex(len(frame))
    return Prepared(_schema_dtypes(schema, frame), refused, found)


def ordered(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame``'s columns in request order; the frame itself when they already are."""
    wanted = [c for c in columns if c in frame.columns]
    return frame if list(frame.columns) == wanted else frame[wanted]


def judge(
    schema: Any, prepared: Prepared, columns: list[str], limit: int = MAX_FAILURES
) -> tuple[pd.DataFrame, Failures]:
    """One request's prepared frame through Pandera: the validated frame, or its failures."""
    frame, refused, found = prepared
    positions = pd.RangeIndex(len(frame))
    for _ in range(2):
        try:
            valid = schema.validate(frame, lazy=True)
        except (SchemaError, SchemaErrors) as exc:
            new = [
                f
                for f in _failures(exc, positions, schema)
                if (f["row"], f["column"]) not in refused
            ]
            for failure in new:
                found.add(failure)
            again = {
                i
                for i, f in enumerate(new)
                if f["row"] is not None and f["check"].startswith("coerce_dtype")
            }
            if not again or any(f["row"] is None for f in new):
                break
            dropped = {new[i]["row"] for i in again}
            keep = [i for i, p in enumerate(positions) if p not in dropped]
            frame = frame.iloc[keep].reset_index(drop=True)
            positions = positions[keep]
            continue
        if not found.found:
            return ordered(valid, columns), Failures()
        break
    return frame, found.result(limit)


def passes_aside(plan: Any, frame: pd.DataFrame) -> bool:
    """True when each check the batch plan (``fastpath.batch_path``) set aside passes on
    ``frame``, run as ``schema.validate`` runs it: Pandera's own ``Check`` on the column, or
    on the frame. False on any doubt (a failure, an error, a result that is not a bool)."""
    for column, check in plan.aside:
        try:
            result = check(frame if column is None else frame[column])
        except Exception:  # noqa: BLE001 - Pandera words it, on the request's way
            return False
        passed = result.check_passed
        if not (isinstance(passed, (bool, np.bool_)) and passed):
            return False
    return True


def requests(
    plan: Any, frame: pd.DataFrame, sure: np.ndarray, size: int
) -> tuple[list, list[int]] | None:
    """Batch scoring's requests of ``size`` rows of ``frame`` (as a request of those rows
    makes it) that pass the batch plan: every row ``sure`` (its JSON is its value) and
    through the plan, and the checks set aside on the request's own frame. Returns
    ``([(frame, positions)], positions of the other requests, whole)``, or None when the
    plan cannot judge ``frame``."""
    passed = plan.passing(frame)
    if passed is None:
        return None
    passed &= sure
    accepted, rest, n = [], [], len(frame)
    for start in range(0, n, size):
        end = min(n, start + size)
        part = frame if end - start == n else frame.iloc[start:end].reset_index(drop=True)
        if passed[start:end].all() and passes_aside(plan, part):
            accepted.append((part, list(range(start, end))))
        else:
            rest += range(start, end)
    return accepted, rest


def validate(
    schema: Any,
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    fast: bool = True,
    lenient: bool = False,
    limit: int = MAX_FAILURES,
) -> tuple[pd.DataFrame, Failures]:
    """Validate request rows lazily; return the coerced frame, or the failures found.

    Small requests try the fast path first (``fast=False`` skips it). Values that coercion
    would change are failures unless ``lenient``. Rows that fail dtype coercion are set
    aside and the rest validated again, so one bad type does not hide range or category
    failures in other rows. At most ``limit`` failures are listed; ``failures.total``
    counts them all.
    """
    if fast and (frame := fastpath.validate_fast(schema, rows, columns)) is not None:
        return frame, Failures()
    return judge(schema, prepare(schema, rows, columns, lenient), columns, limit)
