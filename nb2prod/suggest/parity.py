"""Feature parity: the original cells' X against the entry point's output, column by column.

``compare`` runs in the training kernel on the two frames; its result is plain JSON.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = 3


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _differ(a: pd.Series, b: pd.Series) -> pd.Series:
    """Where two columns differ: both missing is equal, numbers within 1e-9 relative."""
    import numpy as np
    import pandas as pd

    both_missing = a.isna() & b.isna()
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.astype(float).to_numpy(), b.astype(float).to_numpy()
        close = np.isclose(x, y, rtol=1e-9, atol=1e-12)
        return pd.Series(~close, index=a.index) & ~both_missing
    return (a.astype(object) != b.astype(object)) & ~both_missing


def _reason(
    column: str, rows: pd.Index, raw: pd.DataFrame, info: dict[str, Any], only: str | None
) -> str:
    stale = info.get("stale_columns", {})
    if column in stale:
        return f"original notebook bug: {stale[column]}"
    if only:
        return f"unexplained: only the {only} has this column; check it"
    for source, where in info.get("random_columns", {}).items():
        if source in raw.columns:
            nulls = raw.index[raw[source].isna()]
            if len(rows) and rows.isin(nulls).all():
                return (
                    f"deliberate: random imputation of {source} became the learned value "
                    f"({where}); the {len(rows)} row(s) differ only where {source} was null"
                )
    return "unexplained: check this column"


def compare(
    original: pd.DataFrame, suggested: pd.DataFrame, raw: pd.DataFrame, info: dict[str, Any]
) -> dict[str, Any]:
    """Per column: how many rows of ``original`` differ in ``suggested``, examples, why.

    Rows are aligned by index label (the original X may hold a subset, after a split);
    columns present on one side only are listed with every row differing.
    """
    import pandas as pd

    shared = original.index.intersection(suggested.index)
    unaligned = len(original.index.difference(suggested.index))
    original, suggested = original.loc[shared], suggested.loc[shared]
    columns = []
    names = list(original.columns) + [c for c in suggested.columns if c not in original.columns]
    for column in names:
        only = None
        if column not in suggested.columns:
            only = "original"
        elif column not in original.columns:
            only = "suggestion"
        if only:
            mask = pd.Series(True, index=shared)
        else:
            mask = _differ(original[column], suggested[column])
        rows = shared[mask.to_numpy()]
        examples = [
            {
                "index": _plain(i),
                "original": _plain(original.at[i, column]) if only != "suggestion" else None,
                "suggested": _plain(suggested.at[i, column]) if only != "original" else None,
            }
            for i in rows[:EXAMPLES]
        ]
        columns.append(
            {
                "column": str(column),
                "differ": len(rows),
                "rows": len(shared),
                "only_in": only,
                "examples": examples,
                "reason": _reason(str(column), rows, raw, info, only) if len(rows) else "",
            }
        )
    unexplained = [c for c in columns if c["reason"].startswith("unexplained")]
    return {
        "columns": columns,
        "rows": len(shared),
        "unaligned_rows": unaligned,
        "ok": not unexplained,
    }
