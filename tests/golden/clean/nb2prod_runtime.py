"""Generated from clean.ipynb by nb2prod 0.1.0; edit the notebook, not this file.

Request validation shared by the service and the generated tests.
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


def json_value(value: Any) -> Any:
    """A failure value as plain JSON: numpy scalars unwrapped, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if pd.isna(value):
        return None
    return str(value)


def _failures(exc: SchemaError | SchemaErrors, positions: pd.Index) -> list[dict[str, Any]]:
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
        if check.startswith("dtype("):
            continue  # reported as the coerce_dtype failure on the same cell
        row = None if index is None or pd.isna(index) else int(positions[int(index)])
        found.append({"row": row, "column": column, "check": check, "value": json_value(value)})
    return found


def validate(
    schema: Any, rows: list[dict[str, Any]], columns: list[str]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Validate request rows lazily; return the coerced frame, or every failure found.

    Rows that fail dtype coercion are set aside and the rest validated again, so one bad
    type does not hide range or category failures in other rows.
    """
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=columns)
    frame.index = pd.RangeIndex(len(frame))
    positions = frame.index
    failures: list[dict[str, Any]] = []
    for _ in range(2):
        try:
            valid = schema.validate(frame, lazy=True)
        except (SchemaError, SchemaErrors) as exc:
            new = _failures(exc, positions)
            failures.extend(f for f in new if f not in failures)
            bad = {
                f["row"]
                for f in new
                if f["row"] is not None and f["check"].startswith("coerce_dtype")
            }
            if not bad or any(f["row"] is None for f in new):
                break
            keep = [i for i in range(len(frame)) if i not in bad]
            frame = frame.iloc[keep].reset_index(drop=True)
            positions = positions[keep]
            continue
        if not failures:
            return valid[[c for c in columns if c in valid.columns]], []
        break
    failures.sort(key=lambda f: (f["row"] is not None, f["row"] or 0, str(f["column"])))
    return frame, failures
