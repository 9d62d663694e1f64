"""Request validation, shared by the service, the generated tests and batch scoring.

Copied into every bento as ``nb2prod_validation.py``: it imports only what a bento ships
(numpy, pandas, pandera), never nb2prod. Its cost is linear in the rows and failures of a
request, and a request's failure list is capped (``MAX_FAILURES``), so no single request can
hold the service for long or make its answer unbounded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

# A check that fails because an earlier dtype check failed (e.g. ">= 0" on a column holding
# "abc") is a consequence, not a finding of its own.
_CONSEQUENCE = ("TypeError(", "ValueError(")
_COLUMN_CHECKS = ("column_in_dataframe", "column_in_schema")

# The fast path: requests of up to FAST_PATH_MAX_ROWS rows are checked in plain Python against
# a plan compiled once per schema, then built into the frame Pandera would have returned. It
# only ever accepts: a value whose type or check it is not sure of (a null where none is
# allowed, a bool in an int column, NaN, a failed check, a missing or extra key) sends the whole
# request to Pandera, which decides and reports. A schema with anything the plan does not model
# (custom or frame-wide checks, uniqueness, regex columns, other dtypes) always goes to Pandera.
FAST_PATH_MAX_ROWS = 1000
_EXACT_INT = 2**53  # beyond this, numpy compares int64 with floats inexactly: leave it to Pandera
_COMPARE = {
    "greater_than_or_equal_to": lambda s: lambda v, m=s["min_value"]: v >= m,
    "greater_than": lambda s: lambda v, m=s["min_value"]: v > m,
    "less_than_or_equal_to": lambda s: lambda v, m=s["max_value"]: v <= m,
    "less_than": lambda s: lambda v, m=s["max_value"]: v < m,
    "equal_to": lambda s: lambda v, m=s["value"]: v == m,
    "not_equal_to": lambda s: lambda v, m=s["value"]: v != m,
    "in_range": lambda s: _in_range(
        s["min_value"], s["max_value"], s.get("include_min", True), s.get("include_max", True)
    ),
    "isin": lambda s: lambda v, allowed=frozenset(s["allowed_values"]): v in allowed,
    "notin": lambda s: lambda v, forbidden=frozenset(s["forbidden_values"]): v not in forbidden,
}


def _in_range(low: Any, high: Any, include_low: bool, include_high: bool) -> Any:
    def test(v: Any) -> bool:
        return (v >= low if include_low else v > low) and (v <= high if include_high else v < high)

    return test


def _int_value(v: Any) -> Any:
    return v if type(v) is int and -_EXACT_INT <= v <= _EXACT_INT else _UNSURE


def _float_value(v: Any) -> Any:
    if type(v) is float:
        return v if math.isfinite(v) else _UNSURE
    return float(v) if type(v) is int and -_EXACT_INT <= v <= _EXACT_INT else _UNSURE


def _str_value(v: Any) -> Any:
    return v if type(v) is str else _UNSURE


_UNSURE = object()
# dtype name -> (JSON value to the exact Python value Pandera's coercion gives, numpy dtype, null)
_DTYPES = {
    "int64": (_int_value, np.int64, _UNSURE),
    "float64": (_float_value, np.float64, np.nan),
    "str": (_str_value, object, None),
}


class FastPath:
    """A schema compiled to plain-Python checks; ``None`` from a call means "ask Pandera"."""

    def __init__(self, columns: list[str], plan: list[tuple[str, Any, Any, Any, list]]) -> None:
        self.columns, self.plan, self.keys = columns, plan, set(columns)

    @classmethod
    def compile(cls, schema: Any, columns: list[str]) -> FastPath | None:
        """The plan for ``schema``, or None when it holds anything the plan does not model."""
        simple = (
            type(schema).__name__ == "DataFrameSchema"
            and not schema.checks
            and not schema.parsers
            and schema.index is None
            and not schema.unique
            and not schema.ordered
            and not schema.add_missing_columns
            and not schema.drop_invalid_rows
            and schema.strict in (True, False)
            and set(schema.columns) == set(columns)
            and len(columns) == len(set(columns))
        )
        if not simple:
            return None
        plan = []
        for name in columns:
            col = schema.columns[name]
            dtype = _DTYPES.get(str(col.dtype))
            if (
                dtype is None
                or col.regex
                or col.unique
                or col.parsers
                or not col.required
                or col.default is not None
                or col.drop_invalid_rows
                or not (schema.coerce or col.coerce)
            ):
                return None
            tests = []
            for check in col.checks:
                make = _COMPARE.get(check.name)
                # A built-in check is a dispatcher over Pandera's own functions of that name; a
                # custom check, even one named like a built-in, is a plain function.
                registry = getattr(check._check_fn, "_function_registry", None) or {}
                builtin = bool(registry) and all(
                    fn.__module__.startswith("pandera.") and fn.__name__ == check.name
                    for fn in registry.values()
                )
                if (
                    make is None
                    or not builtin
                    or not check.ignore_na
                    or check.raise_warning
                    or check.groupby is not None
                ):
                    return None
                try:
                    tests.append(make(check.statistics))
                except (KeyError, TypeError):
                    return None
            convert, np_dtype, null = dtype
            plan.append((name, convert, np_dtype, null if col.nullable else _UNSURE, tests))
        return cls(columns, plan)

    def __call__(self, rows: list[dict[str, Any]]) -> pd.DataFrame | None:
        """The validated frame, or None when Pandera must decide."""
        keys = self.keys
        for row in rows:
            if type(row) is not dict or row.keys() != keys:
                return None
        data = {}
        for name, convert, np_dtype, null, tests in self.plan:
            values = []
            for row in rows:
                raw = row[name]
                if raw is None:
                    if null is _UNSURE:
                        return None
                    values.append(null)
                    continue
                value = convert(raw)
                if value is _UNSURE:
                    return None
                for test in tests:
                    if not test(value):
                        return None
                values.append(value)
            data[name] = np.array(values, dtype=np_dtype)
        # The plan is in column order, and a dict keeps it; `columns=` would cost a reindex
        # (about 60% of building a one-row frame, measured with pandas 2.3).
        return pd.DataFrame(data)


_COMPILED: dict[int, tuple[Any, FastPath | None]] = {}


def fast_path(schema: Any, columns: list[str]) -> FastPath | None:
    """The compiled fast path of ``schema`` (compiled on first use, then cached)."""
    key = id(schema)
    if key not in _COMPILED or _COMPILED[key][0] is not schema:
        _COMPILED[key] = (schema, FastPath.compile(schema, columns))
    return _COMPILED[key][1]


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
        if isinstance(value, str) and value.startswith(_CONSEQUENCE) and index is None:
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


def validate_fast(
    schema: Any, rows: list[dict[str, Any]], columns: list[str]
) -> pd.DataFrame | None:
    """The validated frame by the fast path, or None when Pandera must decide (microseconds)."""
    if not 0 < len(rows) <= FAST_PATH_MAX_ROWS:
        return None
    plan = fast_path(schema, columns)
    return plan(rows) if plan is not None else None


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
    if fast and (frame := validate_fast(schema, rows, columns)) is not None:
        return frame, Failures()
    found = _Collector()
    refused = _strict(schema, rows, lenient, found)
    if refused:  # validate the rest of those rows; the refused cells are their failure
        rows = list(rows)
        for i, name in refused:
            rows[i] = {**rows[i], name: None}
    positions = pd.RangeIndex(len(rows))
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=columns)
    frame.index = pd.RangeIndex(len(frame))
    frame = _schema_dtypes(schema, frame)
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
            return valid[[c for c in columns if c in valid.columns]], Failures()
        break
    return frame, found.result(limit)
