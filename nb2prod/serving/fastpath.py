"""The fast validation path: a schema compiled once to plain-Python checks that only accept.

Copied into every bento as ``nb2prod_fastpath.py``: it imports only what a bento ships (numpy,
pandas, re), never nb2prod. Requests of up to FAST_PATH_MAX_ROWS rows are checked against the
plan, then built into the very frame the Pandera path (``nb2prod_validation.validate`` with
``fast=False``) returns, coerced schema or not. It only ever accepts: a value whose type or
check it is not sure of (a null where none is allowed, a bool in an int column, ``3.0`` for an
int, NaN, a failed check, a missing or extra key) gives None, and Pandera decides and words the
422. A schema with anything the plan does not model (custom or frame-wide checks, uniqueness,
regex columns, other dtypes, statistics it cannot compare exactly) always goes to Pandera.

For batch scoring, ``FastPath.passing(frame)`` is the same plan over a whole pandas frame:
numpy comparisons for numbers, the per-value tests on each distinct string; a row passes only
when each of its values passes what ``__call__`` would check of it as JSON. ``batch_path``
compiles the plan of a schema with other checks too (custom, frame-wide), which it sets
aside (``FastPath.aside``: ``nb2prod_validation.passes_aside`` runs them as Pandera does).
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any

import numpy as np
import pandas as pd

FAST_PATH_MAX_ROWS = 1000
_EXACT_INT = 2**53  # beyond this, numpy compares int64 with floats inexactly: leave it to Pandera
_UNSURE = object()


def _int_value(v: Any) -> Any:
    return v if type(v) is int and -_EXACT_INT <= v <= _EXACT_INT else _UNSURE


def _float_value(v: Any) -> Any:
    # Whole numbers alone make an int column, which both Pandera's coercion and, without
    # coercion, the Pandera path's own cast (``_schema_dtypes``) turn into float64, exactly.
    if type(v) is float:
        return v if math.isfinite(v) else _UNSURE
    return float(v) if type(v) is int and -_EXACT_INT <= v <= _EXACT_INT else _UNSURE


def _str_value(v: Any) -> Any:
    return v if type(v) is str else _UNSURE


# dtype name -> (JSON value to the exact Python value in Pandera's frame, numpy dtype, null,
# kind). The same with coercion or without: what passes here is what the JSON already is (an
# int stays an int, a str a str), so coercing it is the identity, and without coercion the
# frame pandas builds from it already has the dtype (an int column, an object column of str;
# a float column whose values are all whole is cast to float64 by the Pandera path, as here).
_DTYPES = {
    "int64": (_int_value, np.int64, _UNSURE, "number"),
    "float64": (_float_value, np.float64, np.nan, "number"),
    "str": (_str_value, object, None, "str"),
}


def _number(v: Any) -> bool:
    """A statistic Python and numpy compare alike with every value the plan lets through."""
    if type(v) is int:
        return -_EXACT_INT <= v <= _EXACT_INT
    return type(v) is float and not math.isnan(v)


def _fits(v: Any, kind: str) -> bool:
    return _number(v) if kind == "number" else type(v) is str


def _bound(s: dict, key: str, kind: str) -> Any:
    value = s[key]
    if not _fits(value, kind):
        raise TypeError(key)
    return value


def _members(values: Any, kind: str) -> frozenset:
    # A str is not a list of values: pandas' isin refuses it, so Pandera reports a failure.
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise TypeError("values")
    found = frozenset(v for v in values if v is not None)  # a null never reaches a check
    if not all(_fits(v, kind) for v in found):
        raise TypeError("values")
    return found


def _in_range(s: dict, kind: str) -> Any:
    low, high = _bound(s, "min_value", kind), _bound(s, "max_value", kind)
    include_low, include_high = s.get("include_min", True), s.get("include_max", True)
    if type(include_low) is not bool or type(include_high) is not bool:
        raise TypeError("include")

    def test(v: Any) -> bool:
        return (v >= low if include_low else v > low) and (v <= high if include_high else v < high)

    return test


def _length(s: dict, kind: str) -> Any:
    # Pandera: len() of each string, then == exact_value, else >= min_value and <= max_value
    low, high, exact = s.get("min_value"), s.get("max_value"), s.get("exact_value")
    if kind != "str" or not all(x is None or type(x) is int for x in (low, high, exact)):
        raise TypeError("str_length")
    if exact is not None:
        return lambda v: len(v) == exact
    if low is None and high is None:
        raise TypeError("str_length")  # Pandera raises: let it say so
    return lambda v: (low is None or len(v) >= low) and (high is None or len(v) <= high)


def _regex(s: dict, kind: str) -> Any:
    # pandas' str.match / str.contains call re.compile(pattern, flags=0): the same object here
    pattern = s["pattern"]
    if kind != "str" or not isinstance(getattr(pattern, "pattern", pattern), str):
        raise TypeError("pattern")
    try:
        return re.compile(pattern)
    except (re.error, ValueError) as exc:
        raise TypeError("pattern") from exc


def _affix(s: dict, kind: str) -> str:
    string = s["string"]
    if kind != "str" or type(string) is not str:
        raise TypeError("string")
    return string


def _compare(op: Any, key: str) -> Any:
    def make(s: dict, kind: str) -> Any:
        bound = _bound(s, key, kind)
        return lambda v: op(v, bound)

    return make


def _isin(s: dict, kind: str) -> Any:
    return _members(s["allowed_values"], kind).__contains__


def _notin(s: dict, kind: str) -> Any:
    forbidden = _members(s["forbidden_values"], kind)
    return lambda v: v not in forbidden


def _match(s: dict, kind: str) -> Any:
    regex = _regex(s, kind)  # data.str.match(pattern, na=False): re.match, at the start
    return lambda v: regex.match(v) is not None


def _contains(s: dict, kind: str) -> Any:
    regex = _regex(s, kind)  # data.str.contains(pattern, na=False): re.search, anywhere
    return lambda v: regex.search(v) is not None


def _starts(s: dict, kind: str) -> Any:
    string = _affix(s, kind)
    return lambda v: v.startswith(string)


def _ends(s: dict, kind: str) -> Any:
    string = _affix(s, kind)
    return lambda v: v.endswith(string)


# a built-in check's name -> (its statistics, the column's kind) -> a test of one value that
# is True exactly when Pandera's function is True on it (backends/pandas/builtin_checks.py)
_CHECKS = {
    "greater_than_or_equal_to": _compare(operator.ge, "min_value"),
    "greater_than": _compare(operator.gt, "min_value"),
    "less_than_or_equal_to": _compare(operator.le, "max_value"),
    "less_than": _compare(operator.lt, "max_value"),
    "equal_to": _compare(operator.eq, "value"),
    "not_equal_to": _compare(operator.ne, "value"),
    "in_range": _in_range,
    "isin": _isin,
    "notin": _notin,
    "str_length": _length,
    "str_matches": _match,
    "str_contains": _contains,
    "str_startswith": _starts,
    "str_endswith": _ends,
}
# Each of these decides every value on its own (Pandera's unique_values_eq, say, does not).
PER_VALUE = frozenset(_CHECKS)


def _vector_range(s: dict) -> Any:
    low, high = s["min_value"], s["max_value"]
    above = np.greater_equal if s.get("include_min", True) else np.greater
    below = np.less_equal if s.get("include_max", True) else np.less
    return lambda a: above(a, low) & below(a, high)


def _vector_compare(op: Any, key: str) -> Any:
    return lambda s: lambda a, bound=s[key]: op(a, bound)


def _vector_members(key: str, keep: bool) -> Any:
    def make(s: dict) -> Any:
        members = np.array(sorted(_members(s[key], "number")), dtype=np.float64)
        return lambda a: np.isin(a, members) == keep

    return make


# The same tests as numpy ufuncs over an int64 or float64 array of the values _int_value and
# _float_value pass (finite, ints within 2**53, so numpy compares them with the statistics,
# themselves exact as float64, as Python does); the statistics were vetted by _CHECKS first.
_NUMBER_VECTORS = {
    "greater_than_or_equal_to": _vector_compare(np.greater_equal, "min_value"),
    "greater_than": _vector_compare(np.greater, "min_value"),
    "less_than_or_equal_to": _vector_compare(np.less_equal, "max_value"),
    "less_than": _vector_compare(np.less, "max_value"),
    "equal_to": _vector_compare(np.equal, "value"),
    "not_equal_to": _vector_compare(np.not_equal, "value"),
    "in_range": _vector_range,
    "isin": _vector_members("allowed_values", True),
    "notin": _vector_members("forbidden_values", False),
}


def builtin(check: Any) -> bool:
    """A built-in check is a dispatcher over Pandera's own functions of that name; a custom
    check, even one named like a built-in, is a plain function."""
    registry = getattr(check._check_fn, "_function_registry", None) or {}
    return bool(registry) and all(
        fn.__module__.startswith("pandera.") and fn.__name__ == check.name
        for fn in registry.values()
    )


def row_by_row(schema: Any, frame_checks: bool = False) -> bool:
    """A plain ``DataFrameSchema`` with nothing frame-wide: no frame checks (unless
    ``frame_checks``) or parsers, no index, no uniqueness, no added columns or dropped rows
    (its columns may still have any)."""
    return (
        type(schema).__name__ == "DataFrameSchema"
        and (frame_checks or not schema.checks)
        and not schema.parsers
        and schema.index is None
        and not schema.unique
        and not schema.add_missing_columns
        and not schema.drop_invalid_rows
    )


class FastPath:
    """A schema compiled to plain-Python checks; ``None`` from a call means "ask Pandera"."""

    def __init__(
        self,
        columns: list[str],
        plan: list[tuple[str, Any, Any, Any, list]],
        vectors: list[list] | None = None,
    ) -> None:
        self.columns, self.plan, self.keys = columns, plan, set(columns)
        self.vectors = vectors  # per column, the numpy tests of a number column's checks
        self.aside: list[tuple[str | None, Any]] = []  # (column or None: the frame, check)

    @classmethod
    def compile(cls, schema: Any, columns: list[str], aside: bool = False) -> FastPath | None:
        """The plan for ``schema``, or None when it holds anything the plan does not model.

        With ``aside``, the checks it does not model (frame checks too) are set aside instead.
        """
        found = [(None, check) for check in schema.checks] if aside else []
        simple = (
            row_by_row(schema, aside)
            and not schema.ordered
            and schema.strict in (True, False)
            and set(schema.columns) == set(columns)
            and len(columns) == len(set(columns))
        )
        if not simple:
            return None
        plan, vectors = [], []
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
            ):
                return None
            convert, np_dtype, null, kind = dtype
            tests, numbers = [], []
            for check in col.checks:
                make = _CHECKS.get(check.name)
                modelled = not (
                    make is None
                    or not builtin(check)
                    or not check.ignore_na
                    or check.raise_warning
                    or check.groupby is not None
                )
                try:
                    test = make(check.statistics, kind) if modelled else None
                    vector = _NUMBER_VECTORS[check.name] if modelled and kind == "number" else None
                except (KeyError, TypeError):
                    modelled = False
                if not modelled:
                    if not aside or check.groupby is not None:
                        return None
                    found.append((name, check))
                    continue
                tests.append(test)
                numbers += [vector(check.statistics)] if vector else []
            plan.append((name, convert, np_dtype, null if col.nullable else _UNSURE, tests))
            vectors.append(numbers)
        if any(check.groupby is not None for _, check in found):
            return None
        compiled = cls(columns, plan, vectors)
        compiled.aside = found
        return compiled

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
                if raw is None:  # a null skips the checks (Pandera's ignore_na)
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

    def passing(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Which rows of ``frame`` pass the plan (not the checks set aside) as ``__call__``
        would pass them as JSON: int64 values within 2**53, finite float64 values (NaN: a
        null), exact str (None: a null), nulls only where allowed, every other value through
        the checks. None when a column is not of its very dtype (or the frame lacks the
        schema's columns, in its order): ask Pandera."""
        if list(frame.columns) != self.columns or self.vectors is None:
            return None
        passed = np.ones(len(frame), dtype=bool)
        for (name, _, np_dtype, null, tests), numbers in zip(self.plan, self.vectors):
            if frame[name].dtype != np_dtype:  # the frame's (Int64 and category are not)
                return None
            values = frame[name].to_numpy()
            if np_dtype is object:
                if not set(map(type, values)) <= {str, type(None)}:
                    return None  # type(), not isinstance: a str subclass is not a str here
                codes, distinct = pd.factorize(values)  # a null is code -1
                verdict = [null is not _UNSURE]  # appended: what code -1 picks
                verdict[:0] = [all(test(v) for test in tests) for v in distinct]
                passed &= np.asarray(verdict, dtype=bool)[codes]
                continue
            if np_dtype is np.int64:
                passed &= (values >= -_EXACT_INT) & (values <= _EXACT_INT)
                present = values
            else:
                missing = np.isnan(values)
                passed &= np.isfinite(values) | (False if null is _UNSURE else missing)
                present = np.where(missing, 0.0, values)  # checks skip a null: not judged
            for test in numbers:
                passed &= test(present) | (False if np_dtype is np.int64 else missing)
        return passed

    def accepts(self, frame: pd.DataFrame) -> bool:
        """True when every row of ``frame`` passes the plan and nothing is set aside."""
        passed = None if self.aside else self.passing(frame)
        return passed is not None and bool(passed.all())


_COMPILED: dict[int, tuple[Any, FastPath | None]] = {}


def fast_path(schema: Any, columns: list[str]) -> FastPath | None:
    """The compiled fast path of ``schema`` (compiled on first use, then cached)."""
    key = id(schema)
    if key not in _COMPILED or _COMPILED[key][0] is not schema:
        _COMPILED[key] = (schema, FastPath.compile(schema, columns))
    return _COMPILED[key][1]


_BATCH: dict[int, tuple[Any, FastPath | None]] = {}


def batch_path(schema: Any, columns: list[str]) -> FastPath | None:
    """The plan of ``schema`` with the checks it does not model set aside (cached)."""
    key = id(schema)
    if key not in _BATCH or _BATCH[key][0] is not schema:
        _BATCH[key] = (schema, FastPath.compile(schema, columns, aside=True))
    return _BATCH[key][1]


def validate_fast(
    schema: Any, rows: list[dict[str, Any]], columns: list[str]
) -> pd.DataFrame | None:
    """The validated frame by the fast path, or None when Pandera must decide (microseconds)."""
    if not 0 < len(rows) <= FAST_PATH_MAX_ROWS:
        return None
    plan = fast_path(schema, columns)
    return plan(rows) if plan is not None else None
