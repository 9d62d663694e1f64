"""Plan the generated property tests: how each input column is drawn, and why."""

from __future__ import annotations

import ast
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.gate.properties import BY_KEY, PROPERTIES, read_settings

if TYPE_CHECKING:
    import pandas as pd
    from pandera.api.checks import Check
    from pandera.api.pandas.components import Column
    from pandera.api.pandas.container import DataFrameSchema

    from nb2prod.notebook.analysis import CheckResult
    from nb2prod.notebook.read import Cell

MAX_VALUES = 40  # observed values embedded per column; more are thinned evenly
# Checks Pandera turns into a strategy itself (docs/properties.md); any other check is custom.
PANDERA_CHECKS = frozenset(
    {
        "equal_to",
        "not_equal_to",
        "greater_than",
        "greater_than_or_equal_to",
        "less_than",
        "less_than_or_equal_to",
        "in_range",
        "isin",
        "notin",
        "str_matches",
        "str_contains",
        "str_startswith",
        "str_endswith",
        "str_length",
    }
)
_LOWER = {"greater_than": False, "greater_than_or_equal_to": True}
_NULLS = {"float": "np.nan", "datetime": "pd.NaT"}  # the null a column of that kind holds
_NULLABLE_EXTENSION = ("Int64", "Float64", "boolean")  # pandas dtypes that hold <NA>
_SYMBOLS = {
    "greater_than": ">",
    "greater_than_or_equal_to": ">=",
    "less_than": "<",
    "less_than_or_equal_to": "<=",
    "equal_to": "==",
    "not_equal_to": "!=",
}
_UPPER = {"less_than": False, "less_than_or_equal_to": True}


def entrypoint_cell(checked: CheckResult) -> Cell | None:
    """The ``nb2prod:features`` cell that defines the entry point, or None."""
    name = checked.plan.entrypoint
    for cell in checked.plan.feature_cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        if any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body):
            return cell
    return None


def _schema(schema_source: str, name: str) -> DataFrameSchema:
    """The input ``DataFrameSchema``, from the lifted schema module's text."""
    import sys
    import types

    # A registered module, because Pandera resolves the annotations through sys.modules.
    module = types.ModuleType(f"_nb2prod_lifted_schema_{id(schema_source)}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(schema_source, "lifted/schema.py", "exec"), module.__dict__)  # noqa: S102
        return getattr(module, name).to_schema()
    finally:
        del sys.modules[module.__name__]


def _kind(dtype: str) -> str:
    text = dtype.lower()
    if text.startswith(("int", "uint")):
        return "int"
    if text.startswith("float"):
        return "float"
    if text in ("bool", "boolean"):
        return "bool"
    if text.startswith("datetime"):
        return "datetime"
    if text == "category":
        return "category"
    if text in ("str", "string", "object") or text.startswith("string"):
        return "str"
    return "other"


def _bounds(checks: list[Check]) -> tuple[Any, Any]:
    """The schema's (lower, upper) bound of a column, None where it leaves a side open."""
    low = high = None
    for check in checks:
        stats = check.statistics
        if check.name in _LOWER:
            low = stats["min_value"]
        elif check.name in _UPPER:
            high = stats["max_value"]
        elif check.name == "in_range":
            low, high = stats["min_value"], stats["max_value"]
        elif check.name in ("isin", "equal_to"):
            return "set", "set"
    return low, high


def _thin(values: list[Any]) -> list[Any]:
    """At most MAX_VALUES of the sorted ``values``, evenly spaced, first and last kept."""
    if len(values) <= MAX_VALUES:
        return values
    step = (len(values) - 1) / (MAX_VALUES - 1)
    return [values[round(i * step)] for i in range(MAX_VALUES)]


def _literal(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _observed(series: pd.Series) -> list[Any]:
    values = series.dropna().unique().tolist()
    try:
        values = sorted(values)
    except TypeError:
        values = sorted(values, key=str)
    return [_literal(v) for v in _thin(values)]


def _lines(values: list[Any], width: int = 88) -> list[str]:
    """``values`` as the lines of a Python list literal's body, at most ``width`` wide."""
    lines, line = [], ""
    for text in (repr(v) + "," for v in values):
        if line and len(line) + 1 + len(text) > width:
            lines.append(line)
            line = ""
        line = f"{line} {text}" if line else text
    return [*lines, line] if line else lines


def _can_hold_null(dtype: str, kind: str) -> bool:
    return kind in ("float", "str", "category", "datetime") or dtype in _NULLABLE_EXTENSION


def _column(name: str, column: Column | None, reference: pd.DataFrame) -> dict[str, Any]:
    """How one input column is drawn, and why; the template lays it out."""
    dtype = str(column.dtype) if column is not None else str(reference[name].dtype)
    kind = _kind(dtype)
    seen = reference[name] if name in reference.columns else None
    plan = {
        "name": name,
        "dtype": dtype,
        "kind": kind,
        "nullable": False,
        "coerce": False,
        "observed": [],
    }
    if column is None:
        values = _observed(seen)
        return {
            **plan,
            "source": "values",
            "observed": _lines(values),
            "nullable": bool(seen.isna().any()),
            "null": _NULLS.get(kind, "None"),
            "why": "not in the input schema; the values the training data holds",
        }
    plan["nullable"] = bool(column.nullable) and _can_hold_null(dtype, kind)
    plan["null"] = _NULLS.get(kind, "None")
    checks = list(column.checks)
    custom = [c.name for c in checks if c.name not in PANDERA_CHECKS]
    low, high = _bounds(checks)
    described = ", ".join([dtype, *(_describe(c) for c in checks)])
    if kind in ("category", "other") or custom:
        reason = f"custom check {', '.join(custom)}" if custom else f"{dtype} dtype"
        values = _observed(seen) if seen is not None else []
        if values:
            return {
                **plan,
                "source": "values",
                "observed": _lines(values),
                "coerce": kind in ("category", "other") or dtype in _NULLABLE_EXTENSION,
                "why": f"Pandera cannot draw its {reason}: values seen in the training data",
            }
    bounds, extremes = _edges(column, kind, low, high) if not custom else ([], [])
    plan.update(bounds=bounds, extremes=extremes)
    if kind in ("int", "float") and (low is None or high is None) and seen is not None:
        drawn = seen.dropna()
        if len(drawn):
            lo, hi = _range(low, high, drawn, kind)
            why = f"the schema ({described}) leaves the range open: the training data's range"
            return {
                **plan,
                "source": "range",
                "low": lo,
                "high": hi,
                "why": why + _mixed(bounds, extremes),
            }
    why = f"Pandera, from the schema ({described})" + _mixed(bounds, extremes)
    return {**plan, "source": "pandera", "why": why}


def _near(value: Any, kind: str, *, up: bool, inclusive: bool) -> int | float | None:
    """The value at an inclusive bound, or the nearest one inside an exclusive bound."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    if kind == "int":
        if inclusive:
            return math.ceil(value) if up else math.floor(value)
        return math.floor(value) + 1 if up else math.ceil(value) - 1
    return value if inclusive else math.nextafter(value, math.inf if up else -math.inf)


def _bound_values(check: Check, kind: str) -> list[Any]:
    """The values a ``ge/gt/le/lt/in_range`` check lets through at its ends."""
    stats = check.statistics
    if check.name == "in_range":
        return [
            _near(stats["min_value"], kind, up=True, inclusive=stats.get("include_min", True)),
            _near(stats["max_value"], kind, up=False, inclusive=stats.get("include_max", True)),
        ]
    if check.name in _LOWER:
        return [_near(stats["min_value"], kind, up=True, inclusive=_LOWER[check.name])]
    if check.name in _UPPER:
        return [_near(stats["max_value"], kind, up=False, inclusive=_UPPER[check.name])]
    return []


def _edges(column: Column, kind: str, low: Any, high: Any) -> tuple[list[Any], list[Any]]:
    """A numeric column's own bounds, and the extreme values it accepts where a side is open.

    The bounds are the values of its ``ge``/``le``/``in_range`` checks and the nearest values
    inside ``gt``/``lt``; the extremes are the dtype's largest magnitudes, ±1e300, ±1e-300 and
    0. Only values that fit the dtype and pass every check of the column are kept.
    """
    import numpy as np
    import pandas as pd

    if kind not in ("int", "float") or "set" in (low, high):
        return [], []
    try:
        dtype = np.dtype(str(column.dtype).lower())
    except TypeError:  # a pandas extension dtype (Int64, Float64)
        dtype = np.dtype("int64" if kind == "int" else "float64")
    if kind == "int":
        info = np.iinfo(dtype)
        extremes = [int(info.min), 0, int(info.max)]
    else:
        top = float(np.finfo(dtype).max)
        extremes = [-top, -1e300, -1e-300, 0.0, 1e-300, 1e300, top]

    def fits(value: Any) -> bool:
        if kind == "int":
            return isinstance(value, int) and info.min <= value <= info.max
        with np.errstate(over="ignore", under="ignore"):
            return isinstance(value, float) and float(dtype.type(value)) == value

    bounds = [v for check in column.checks for v in _bound_values(check, kind)]
    if low is not None and high is not None:
        extremes = []
    candidates = list(dict.fromkeys(v for v in [*bounds, *extremes] if fits(v)))
    try:
        values = pd.Series(candidates, dtype=dtype)
        ok = pd.Series(True, index=values.index)
        for check in column.checks:
            ok &= check(values).check_output.astype(bool)
    except Exception:  # noqa: BLE001 - a check that cannot judge them: mix nothing in
        return [], []
    accepted = {v for v, good in zip(candidates, ok) if good}
    bounds = sorted(v for v in dict.fromkeys(bounds) if v in accepted)
    return bounds, sorted(v for v in candidates if v in accepted and v not in bounds)


def _mixed(bounds: list[Any], extremes: list[Any]) -> str:
    """The part of a column's "why" that says which values are mixed into its draws."""

    def listing(values: list[Any]) -> str:
        shown = [repr(v) for v in values]
        return " and ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)

    text = ""
    if bounds:
        text += f"; its bound{'s' if len(bounds) > 1 else ''} {listing(bounds)} mixed in"
    if extremes:
        text += f"; in the output contract test also the extreme values {listing(extremes)}"
    return text


def _describe(check: Check) -> str:
    """A check as people write it: ``>= 0``, ``in [0, 1]``, ``one of ['a', 'b']``."""
    stats = check.statistics
    if check.name in _SYMBOLS:
        return f"{_SYMBOLS[check.name]} {next(iter(stats.values()))!r}"
    if check.name == "in_range":
        return f"in [{stats['min_value']!r}, {stats['max_value']!r}]"
    if check.name in ("isin", "notin"):
        word = "one of" if check.name == "isin" else "not one of"
        return f"{word} {list(next(iter(stats.values())))!r}"
    shown = [repr(v) for v in stats.values() if v is not None]
    return " ".join([check.name, *shown])


def _range(low: Any, high: Any, seen: pd.Series, kind: str) -> tuple[Any, Any]:
    cast = int if kind == "int" else float
    lo, hi = cast(seen.min()), cast(seen.max())
    if low is not None and low != "set":
        lo = max(lo, cast(math.ceil(low)) if kind == "int" else cast(low))
    if high is not None and high != "set":
        hi = min(hi, cast(math.floor(high)) if kind == "int" else cast(high))
    return lo, max(lo, hi)


def _filter_reasons(schema: DataFrameSchema) -> list[str]:
    """Checks the column strategies cannot guarantee, so drawn frames must pass validation."""
    reasons = ["frame-wide checks"] if schema.checks else []
    reasons += ["unique columns"] if schema.unique else []
    for name, column in schema.columns.items():
        custom = [c.name for c in column.checks if c.name not in PANDERA_CHECKS]
        reasons += [f"custom check {c} on {name}" for c in custom]
        reasons += [f"unique {name}"] if column.unique else []
    return reasons


@dataclass(frozen=True)
class PropertyPlan:
    """What the property-test templates get, and what the manifest records."""

    context: dict[str, Any]
    manifest: dict[str, Any]


def plan_tests(
    checked: CheckResult, reference_file: Path, schema_source: str, *, gate: bool = True
) -> PropertyPlan:
    """Decide the generated property tests for a checked notebook after training.

    Args:
        checked: the notebook's check result (its lift plan names the schemas and entry point).
        reference_file: the raw training inputs the build ships (observed values and ranges).
        schema_source: the text of the generated ``lifted/schema.py``.
        gate: whether the build runs the tests as its gate (recorded in the manifest).
    """
    import pandas as pd

    settings = read_settings(checked.notebook)
    schema = _schema(schema_source, checked.plan.input_schema)
    reference = pd.read_parquet(reference_file)
    names = [*reference.columns, *(c for c in schema.columns if c not in reference.columns)]
    columns = [_column(n, schema.columns.get(n), reference) for n in names]
    for column in columns:
        nulls = "; with nulls" if column["nullable"] else ""
        column["comment"] = textwrap.wrap(
            f"{column['name']}: {column['why']}{nulls}", 94, break_on_hyphens=False
        )
    cell = entrypoint_cell(checked)
    where = f"cell {cell.index} (id {cell.id})" if cell else "no features cell"
    skipped = {k: settings.skip[k] for k in BY_KEY if k in settings.skip}
    context = {
        "doc": {p.key: p.docstring for p in PROPERTIES},
        "skip": {p.key: skipped.get(p.key) for p in PROPERTIES},
        "columns": columns,
        "bounds": {c["name"]: c["bounds"] for c in columns if c.get("bounds")},
        "extremes": {c["name"]: c["extremes"] for c in columns if c.get("extremes")},
        "filter": _filter_reasons(schema),
        "examples": settings.examples,
        "max_rows": settings.max_rows,
        "entrypoint_cell": where,
    }
    manifest = {
        "gate": gate,
        "examples": settings.examples,
        "max_rows": settings.max_rows,
        "skipped": skipped,
        "tests": [p.test for p in PROPERTIES if p.key not in skipped],
        "entrypoint_cell": {"index": cell.index, "id": cell.id} if cell else None,
        "columns": {c["name"]: c["why"] for c in columns},
    }
    return PropertyPlan(context, manifest)
