"""Schema inference: Pandera's ``infer_schema`` on a frame, rendered as a ``DataFrameModel``.

``describe`` runs in the training kernel (it needs the frame); ``render`` runs on the host
and writes the schema cell's text from what ``describe`` returned (plain JSON).
"""

from __future__ import annotations

import keyword
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 12  # a text column with at most this many values gets an isin check
_KINDS = {"int": "int", "uint": "int", "float": "float", "bool": "bool", "boolean": "bool"}


def _kind(dtype: str) -> str:
    name = dtype.lower()
    if name.startswith("datetime"):
        return "datetime"
    for prefix, kind in _KINDS.items():
        if name.startswith(prefix):
            return kind
    return "str"


def _number(value: Any, kind: str) -> Any:
    value = float(value)
    return int(value) if kind == "int" and value.is_integer() else value


def _round(value: float, up: bool) -> float:
    """``value`` to two significant digits, away from the observed range's inside."""
    if value == 0:
        return 0.0
    digits = 1 - math.floor(math.log10(abs(value)))
    return round((math.ceil if up else math.floor)(value * 10**digits) / 10**digits, digits)


def widen(low: Any, high: Any, kind: str) -> tuple[Any, Any]:
    """The observed range ``[low, high]`` widened by its own width, and down to 0 for a
    column that was never negative: a new but plausible value (an older passenger, a bigger
    fare) passes, while the property gate's extremes stay finite (``astype(int)`` of 1e308
    would overflow)."""
    span = (high - low) or abs(high) or 1
    lo = 0 if low >= 0 else _round(low - span, up=False)
    hi = _round(high + span, up=True)
    if kind == "int":
        return math.floor(lo), math.ceil(hi)
    return float(lo), float(hi)


def describe(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each column as Pandera infers it: kind, nullable, range (widened), category set; ids
    and free text (``monitoring.columns.classify``) get neither range nor set."""
    import pandera.pandas as pa

    from nb2prod.monitoring.columns import classify

    schema = pa.infer_schema(frame)
    columns = []
    for name, column in schema.columns.items():
        kind = _kind(str(column.dtype))
        item: dict[str, Any] = {"name": str(name), "kind": kind, "nullable": bool(column.nullable)}
        role = "numerical" if kind in ("int", "float") else "categorical"
        unique = classify(str(name), frame[name], role)
        if unique is not None:  # every request brings new ids and new text: no range, no set
            item["unbounded"] = f"{unique.reason}: {unique.detail}"
            columns.append(item)
            continue
        for check in column.checks:
            stats = check.statistics or {}
            if "min_value" in stats:
                item["ge"] = _number(stats["min_value"], kind)
            if "max_value" in stats:
                item["le"] = _number(stats["max_value"], kind)
        if "ge" in item and "le" in item and kind in ("int", "float"):
            item["ge"], item["le"] = widen(item["ge"], item["le"], kind)
        if kind == "str":
            values = frame[name].dropna()
            distinct = sorted({str(v) for v in values})
            if 0 < len(distinct) <= MAX_CATEGORIES and len(values) > 2 * len(distinct):
                item["isin"] = distinct
        columns.append(item)
    return columns


def _attribute(name: str, taken: set[str]) -> str:
    attr = name if name.isidentifier() and not keyword.iskeyword(name) else ""
    if not attr:
        attr = re.sub(r"\W+", "_", name).strip("_") or "column"
        attr = f"c_{attr}" if attr[0].isdigit() or keyword.iskeyword(attr) else attr
    while attr in taken:
        attr += "_"
    taken.add(attr)
    return attr


def _field(column: dict[str, Any], output: bool) -> tuple[str, list[str]]:
    kind = column["kind"]
    args = []
    if output:  # the model takes numbers: an int that a null turned into a float still passes
        shown = "float" if kind in ("int", "float", "bool") else kind
        if shown == "float":
            args.append("coerce=True")
    else:
        shown = kind
        for bound in ("ge", "le"):
            if bound in column:
                args.append(f"{bound}={column[bound]!r}")
        if "isin" in column:
            args.append(f"isin={column['isin']!r}")
    if column["nullable"]:
        args.append("nullable=True")
    annotation = "pd.Timestamp" if shown == "datetime" else shown
    return annotation, args


def model_lines(name: str, columns: list[dict[str, Any]], doc: str, output: bool) -> list[str]:
    """One ``DataFrameModel`` class: a field per column, in the frame's order."""
    lines = [f"class {name}(pa.DataFrameModel):", f'    """{doc}"""', ""]
    taken: set[str] = set()
    for column in columns:
        attr = _attribute(column["name"], taken)
        annotation, args = _field(column, output)
        if attr != column["name"]:
            args.insert(0, f"alias={column['name']!r}")
        value = f" = pa.Field({', '.join(args)})" if args else ""
        lines.append(f"    {attr}: Series[{annotation}]{value}")
        if "unbounded" in column:
            lines[-1] += f"  # {column['unbounded']}: no observed range"
    return lines


def render(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> str:
    """The schema cell: the raw input model and the features' output model."""
    from nb2prod.suggest.rewrite import INPUT_MODEL, OUTPUT_MODEL

    needs_pd = any(c["kind"] == "datetime" for c in inputs + outputs)
    lines = [
        *(["import pandas as pd"] if needs_pd else []),
        "import pandera.pandas as pa",
        "from pandera.typing import DataFrame, Series",
        "",
        "",
        *model_lines(
            INPUT_MODEL,
            inputs,
            "A request row, inferred from the training frame: types, nulls, the observed\n"
            "    ranges widened by their width, and category sets; ids and free text unbounded.\n"
            "    Review the bounds: requests outside them are refused.",
            output=False,
        ),
        "",
        "",
        *model_lines(
            OUTPUT_MODEL,
            outputs,
            "What the features function gives the model, inferred from its training output.",
            output=True,
        ),
    ]
    return "\n".join(lines)
