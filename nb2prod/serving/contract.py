"""The request contract as JSON Schema: one row object, and the body ``/predict`` takes.

Copied into every bento as ``nb2prod_contract.py``: it imports only what a bento ships, never
nb2prod. The generated ``service.py`` builds both schemas once, from the lifted input schema,
and ``/metadata`` answers them. Pandera's own ``to_json_schema()`` describes a frame column
by column, not the row objects a client sends.
"""

from __future__ import annotations

from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _builtin(check: Any) -> bool:
    """A built-in check is a dispatcher over Pandera's own functions of that name; a custom
    check, even one named like a built-in, is a plain function."""
    registry = getattr(check._check_fn, "_function_registry", None) or {}
    return bool(registry) and all(
        fn.__module__.startswith("pandera.") and fn.__name__ == check.name
        for fn in registry.values()
    )


# a built-in check's statistics -> its JSON Schema keywords (Pandera's names, draft 2020-12)
_KEYWORDS = {
    "greater_than_or_equal_to": lambda s: {"minimum": s["min_value"]},
    "greater_than": lambda s: {"exclusiveMinimum": s["min_value"]},
    "less_than_or_equal_to": lambda s: {"maximum": s["max_value"]},
    "less_than": lambda s: {"exclusiveMaximum": s["max_value"]},
    "in_range": lambda s: {
        "minimum" if s.get("include_min", True) else "exclusiveMinimum": s["min_value"],
        "maximum" if s.get("include_max", True) else "exclusiveMaximum": s["max_value"],
    },
    "equal_to": lambda s: {"const": s["value"]},
    "isin": lambda s: {"enum": list(s["allowed_values"])},
    "notin": lambda s: {"not": {"enum": list(s["forbidden_values"])}},
    "str_matches": lambda s: {"pattern": "^(?:" + s["pattern"] + ")"},  # re.match: at the start
    "str_contains": lambda s: {"pattern": s["pattern"]},
    "str_length": lambda s: (
        {
            k: v
            for k, v in (("minLength", s.get("min_value")), ("maxLength", s.get("max_value")))
            if v is not None
        }
        or {"minLength": s["exact_value"], "maxLength": s["exact_value"]}
    ),
}


def _json_type(dtype: Any) -> dict[str, Any]:
    text = str(dtype).lower()
    if text.startswith(("int", "uint")):
        return {"type": "integer"}
    if text.startswith("float"):
        return {"type": "number"}
    if text.startswith("bool"):
        return {"type": "boolean"}
    if text.startswith("datetime"):
        return {"type": "string", "format": "date-time"}
    return {"type": "string"} if text in ("str", "string", "object") else {}


def row_schema(schema: Any, columns: list[str]) -> dict[str, Any]:
    """The JSON Schema of one row object, as ``/predict`` takes it in ``{"rows": [...]}``.

    Each column has its type (with ``"null"`` when nullable) and the keywords of its
    built-in checks; a check JSON Schema cannot say (a custom one) is named in its
    ``description``, and the service still runs it.
    """
    properties = {}
    for name in columns:
        col = schema.columns[name]
        spec, rest, other = _json_type(col.dtype), [], []
        for check in col.checks:
            make = _KEYWORDS.get(check.name) if _builtin(check) else None
            try:
                keywords = make(check.statistics) if make else None
            except (KeyError, TypeError):
                keywords = None
            if keywords is None:
                other.append(check.name or "custom check")
            elif set(keywords) & set(spec):
                rest.append(keywords)  # a second bound or pattern on the column
            else:
                spec.update(keywords)
        if rest:
            spec["allOf"] = rest
        if col.nullable:
            if "type" in spec:
                spec["type"] = [spec["type"], "null"]
            if "enum" in spec:
                spec["enum"] = [*spec["enum"], None]
        if other:
            spec["description"] = "also checked: " + ", ".join(other)
        properties[name] = spec
    return {
        "$schema": SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "required": [n for n in columns if schema.columns[n].required],
        "additionalProperties": schema.strict is not True,  # unknown keys: refused or dropped
    }


def request_schema(row: dict[str, Any], max_rows: int) -> dict[str, Any]:
    """The JSON Schema of a ``/predict`` body: ``{"rows": [row, ...]}``, at most ``max_rows``."""
    items = {k: v for k, v in row.items() if k != "$schema"}
    rows = {"type": "array", "items": items, "maxItems": max_rows}
    return {
        "$schema": SCHEMA_DIALECT,
        "type": "object",
        "properties": {"rows": rows},
        "required": ["rows"],
    }
