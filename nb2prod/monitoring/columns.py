"""Which input columns drift is computed on: ID-like and free-text columns are left out.

A passenger's id, name or ticket number is new in every batch, so a drift test on it fires
on every batch. Such columns are found from the schema's dtypes and the reference data, or
named in ``nb2prod.monitoring.ignore``; the monitoring config records each one and why.

This module imports nothing of nb2prod but the errors, so the static check can use it too.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nb2prod.errors import NotebookError

if TYPE_CHECKING:
    import pandas as pd

    from nb2prod.notebook.read import Notebook

# Fewer known reference values than this tell nothing about a column's cardinality.
MIN_VALUES = 20
# Distinct values per known value from which a string column is an identifier or free text.
UNIQUE_SHARE = 0.5
# An integer column this close to all-distinct is an id when its values also count up.
INT_UNIQUE_SHARE = 0.95
# Mean words per value from which a near-unique string column is free text, not an id.
TEXT_WORDS = 3
# Mean characters per value from which a string column with many values is free text.
TEXT_CHARS = 50
ID_NAME = re.compile(r"(^|[_\W])(id|uuid|key)$|[a-z0-9](Id|ID)$", re.IGNORECASE)
REASONS = {
    "id-like": "detected as ID-like",
    "free-text": "detected as free text",
    "ignored": "ignored by setting nb2prod.monitoring.ignore",
}


@dataclass(frozen=True)
class LeftOut:
    """An input column drift is not computed on, and why."""

    name: str
    reason: str  # a key of REASONS
    detail: str  # the evidence: "891 distinct values in 891 rows"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def words(self) -> str:
        """``Name (detected as free text: 891 distinct values in 891 rows, 4.1 words each)``."""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.name} ({REASONS.get(self.reason, self.reason)}{detail})"


def describe(left_out: list[dict[str, str]]) -> str:
    """The left-out columns of a monitoring config, as one clause for people."""
    return ", ".join(LeftOut(**c).words for c in left_out)


def _counts_up(values: pd.Series) -> bool:
    """Monotonic in the reference's order, or spread over a dense range (a row number)."""
    span = float(values.max()) - float(values.min()) + 1
    return values.is_monotonic_increasing or span <= 2 * values.nunique()


def classify(name: str, series: pd.Series, role: str) -> LeftOut | None:
    """``id-like`` or ``free-text`` for a column whose values are mostly new in each batch.

    Strings (and other non-numbers) with at least half their values distinct are ids, or free
    text when they run to ``TEXT_WORDS`` words; strings of ``TEXT_CHARS`` characters on
    average are free text. Integers are ids when nearly all distinct and they count up or
    are named like one (``PassengerId``, ``customer_id``). Floats and booleans never are.
    """
    import pandas as pd

    known = series.dropna()
    if len(known) < MIN_VALUES or pd.api.types.is_bool_dtype(known):
        return None
    try:
        distinct = int(known.nunique())
    except TypeError:  # unhashable values (lists): no drift test can use them either
        return LeftOut(name, "id-like", "values are not comparable")
    evidence = f"{distinct} distinct values in {len(known)} rows"
    if pd.api.types.is_float_dtype(known):
        return None
    if pd.api.types.is_integer_dtype(known):
        if role == "numerical" and distinct >= INT_UNIQUE_SHARE * len(known):
            counts, named = _counts_up(known), bool(ID_NAME.search(name))
            if counts or named:
                why = "counting up" if counts else "named like an id"
                return LeftOut(name, "id-like", f"{evidence}, {why}")
        return None
    if pd.api.types.is_numeric_dtype(known) and not pd.api.types.is_object_dtype(known):
        return None
    text = known.astype(str)
    words = float(text.str.split().str.len().mean())
    chars = float(text.str.len().mean())
    unique = distinct >= UNIQUE_SHARE * len(known)
    if (unique and words >= TEXT_WORDS) or (chars >= TEXT_CHARS and distinct >= MIN_VALUES):
        return LeftOut(name, "free-text", f"{evidence}, {words:.1f} words each")
    if unique:
        return LeftOut(name, "id-like", evidence)
    return None


def _did_you_mean(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    if not close:
        lower = {c.lower(): c for c in columns}
        close = [lower[name.lower()]] if name.lower() in lower else []
    return f" (did you mean `{close[0]}`?)" if close else ""


def ignore_problem(ignore: Any, columns: list[str], where: str) -> str | None:
    """What is wrong with ``nb2prod.monitoring.ignore`` given the input ``columns``, or None."""
    setting = "nb2prod.monitoring.ignore"
    if ignore is None:
        return None
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        return f'{where}: notebook setting {setting} must be a list of column names, e.g. ["Name"].'
    for name in ignore:
        if name not in columns:
            return (
                f"{where}: notebook setting {setting} names `{name}`, which is not an input "
                f"column{_did_you_mean(name, columns)}; the input columns are "
                f"{', '.join(columns)}."
            )
    return None


def check_ignore(ignore: Any, columns: list[str], where: str) -> list[str]:
    """The ``ignore`` setting as a list of input columns.

    Raises:
        NotebookError: it is not a list of names, or names a column that is not an input.
    """
    problem = ignore_problem(ignore, columns, where)
    if problem is not None:
        bad = [c for c in ignore if c not in columns] if isinstance(ignore, list) else []
        raise NotebookError(
            problem, setting="nb2prod.monitoring.ignore", column=next(iter(bad), None)
        )
    return list(ignore or [])


def left_out(
    reference: pd.DataFrame,
    roles: dict[str, str],
    ignore: list[str],
    keep: set[str],
) -> list[LeftOut]:
    """The input columns drift is not computed on, in column order.

    ``ignore`` names columns to leave out; ``keep`` names columns the notebook gave a role or
    a method (``monitoring.columns``) or a category set (an ``isin`` check), never detected.
    """
    found = []
    for name, role in roles.items():
        if name in ignore:
            found.append(LeftOut(name, "ignored", ""))
        elif name not in keep and (kind := classify(name, reference[name], role)) is not None:
            found.append(kind)
    return found


def schema_columns(sources: list[str], schema: str) -> list[str] | None:
    """The column names a ``DataFrameModel`` named ``schema`` declares in ``sources``, with
    those of schema classes it extends there; None when that cannot be read statically."""
    classes: dict[str, ast.ClassDef] = {}
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return None
        classes |= {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def columns(name: str, seen: set[str]) -> list[str] | None:
        node = classes.get(name)
        if node is None or name in seen:
            return None
        found: list[str] = []
        for base in node.bases:
            base_name = getattr(base, "id", None)
            if base_name in classes:
                inherited = columns(base_name, seen | {name})
                if inherited is None:
                    return None
                found += inherited
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                found.append(_alias(stmt.value) or stmt.target.id)
        return list(dict.fromkeys(found))

    return columns(schema, set())


def _alias(value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg == "alias" and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    return None


def static_ignore_problem(
    nb: Notebook, schema: str | None, schema_sources: list[str]
) -> str | None:
    """For ``nb2prod check``: an ``ignore`` entry that is not a column of the input schema
    ``schema`` as its cells declare it; None when fine or not readable without running."""
    ignore = (nb.settings.monitoring or {}).get("ignore")
    if ignore is None:
        return None
    columns = schema_columns(schema_sources, schema) if schema else None
    if columns is None:
        return ignore_problem(
            ignore, list(ignore) if isinstance(ignore, list) else [], nb.path.name
        )
    return ignore_problem(ignore, columns, nb.path.name)
