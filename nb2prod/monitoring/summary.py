"""The drift verdict of ``nb2prod monitor``: a row per column, the result, Evidently quiet."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy's and scipy's RuntimeWarnings (a constant column's 0/0) while Evidently
    runs, here only: a nightly job's stderr then holds what matters, and nothing else is
    filtered."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@dataclass
class ColumnDrift:
    """One row of the drift table."""

    column: str
    role: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class MonitorResult:
    """What one ``nb2prod monitor`` run found; ``exit_code`` is 1 when it should retrain."""

    tag: str
    current: str
    rows: int
    reference_rows: int
    columns: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share: float
    drifted_share: float
    dataset_drift: bool
    quality: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left_out: list[dict[str, str]] = field(default_factory=list)  # name, reason, detail
    html: str | None = None
    quality_html: str | None = None
    json: str | None = None
    # rate (None: the logs say nothing), rows, deferred, threshold (--max-defer-rate), defer_below
    deferral: dict[str, Any] = field(default_factory=lambda: deferral_summary(None))

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def drift(self) -> bool:
        """Drift past a threshold: data set share, prediction drift, or a failed gate."""
        failed_gate = any(q.get("gate_passed") is False for q in self.quality)
        return (
            self.dataset_drift or bool(self.prediction and self.prediction.drifted) or failed_gate
        )

    @property
    def deferred_too_often(self) -> bool:
        """More rows deferred to a person than ``--max-defer-rate`` allows."""
        rate, limit = self.deferral["rate"], self.deferral["threshold"]
        return rate is not None and limit is not None and rate > limit

    @property
    def exit_code(self) -> int:
        return 1 if self.drift or self.deferred_too_often else 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (``--json``)."""
        return {
            "bento": self.tag,
            "current": self.current,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "drift": self.drift,
            "exit_code": self.exit_code,
            "dataset_drift": self.dataset_drift,
            "drift_share_threshold": self.drift_share,
            "drifted_share": self.drifted_share,
            "drifted_columns": self.drifted_columns,
            "columns": [vars(c) for c in self.columns],
            "prediction": vars(self.prediction) if self.prediction else None,
            "quality": self.quality,
            "deferral": self.deferral | {"exceeded": self.deferred_too_often},
            "left_out": self.left_out,
            "notes": self.notes,
            "html": self.html,
            "quality_html": self.quality_html,
        }


def deferral_summary(
    counts: tuple[int, int] | None,
    threshold: float | None = None,
    defer_below: float | None = None,
) -> dict[str, Any]:
    """The deferral rate from (rows with a deferral flag, rows deferred); rate None without."""
    rows, deferred = counts or (0, 0)
    return {
        "rate": deferred / rows if rows else None,
        "rows": rows,
        "deferred": deferred,
        "threshold": threshold,
        "defer_below": defer_below,
    }


def summarize(
    snapshot: dict[str, Any], config: dict[str, Any]
) -> tuple[list[ColumnDrift], ColumnDrift | None, float, bool]:
    """Drift rows per column, the prediction row, the drifted share and the data-set verdict."""
    specs = {c["name"]: c for c in config["columns"]}
    failed = {t["metric_config"]["metric_id"] for t in snapshot["tests"] if t["status"] == "FAIL"}
    rows, prediction, share, dataset_drift = [], None, 0.0, False
    for metric in snapshot["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share, dataset_drift = float(metric["value"]["share"]), metric["id"] in failed
        elif kind == "ValueDrift":
            column = metric["config"]["column"]
            spec = specs[column] if len(rows) < len(config["columns"]) else config["prediction"]
            row = ColumnDrift(
                column=column,
                role=spec["role"],
                method=spec["method"],
                score=float(metric["value"]),
                threshold=float(metric["config"].get("threshold", spec["threshold"])),
                drifted=metric["id"] in failed,
            )
            # the preset's per-column metrics come first, then the model output's
            if len(rows) < len(config["columns"]):
                rows.append(row)
            else:
                prediction = row
    return rows, prediction, share, dataset_drift
