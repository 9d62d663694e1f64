"""Current data for ``nb2prod monitor``: a CSV or parquet file, or a prediction log directory."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import MonitorError
from nb2prod.serving.sink import LOG_META, folder_name, log_files

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger(__name__)
SCALARS = (str, int, float, bool, type(None))


@dataclass
class Current:
    """Current data as read: the table, and for logs nb2prod's own fields beside it.

    ``logged`` (prediction logs only) holds ``LOG_META`` and the logged outputs (``prediction``,
    ``proba_<class>``), row for row with ``frame``. Kept apart from the input columns, so an
    input column may have any name, ``prediction`` included.
    """

    frame: pd.DataFrame
    logged: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def output(self, column: str, inputs: list[str]) -> pd.Series | None:
        """A model output the data carries (``prediction``, ``proba_1``), or None: a log's
        own field, or a table's column that is not one of the ``inputs``."""
        if self.logged is not None:
            source = self.logged
        elif column not in inputs:
            source = self.frame
        else:  # an input column of that name is an input, never the model's output
            return None
        if column in source.columns and source[column].notna().any():
            return source[column]
        return None

    def deferral(self) -> tuple[int, int] | None:
        """(rows whose log line says whether they were deferred, those deferred), or None
        when no line says (a table, or logs of a bento without ``serving.defer_below``)."""
        if self.logged is None or "deferred" not in self.logged.columns:
            return None
        flags = self.logged["deferred"].dropna()
        return (len(flags), int(flags.astype(bool).sum())) if len(flags) else None

    def version_notes(self, version: str) -> list[str]:
        """A note when the logs come from other model versions than ``version``."""
        if self.logged is None or "model_version" not in self.logged.columns:
            return []
        seen = sorted(str(v) for v in self.logged["model_version"].dropna().unique())
        if seen == [version]:
            return []
        return [f"the logs come from model version(s) {', '.join(seen)}; this bento is {version}"]


def _table(part: Any) -> tuple[list[str], list[list]] | None:
    """``{"columns": [...], "data": [[...], ...]}`` as (columns, rows), or None if misshapen."""
    if not isinstance(part, dict):
        return None
    columns, data = part.get("columns"), part.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        return None
    if len(set(columns)) != len(columns) or not isinstance(data, list):
        return None
    width = len(columns)
    for row in data:
        if not isinstance(row, list) or len(row) != width:
            return None
        if not all(isinstance(v, SCALARS) for v in row):
            return None
    return columns, data


def _record(raw: bytes) -> tuple[dict, tuple, tuple] | None:
    """One log line as (record, inputs, outputs), or None: not UTF-8, not JSON, wrong shape."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one: a cut or corrupted line
        return None
    if not isinstance(record, dict):
        return None
    inputs, outputs = _table(record.get("inputs")), _table(record.get("outputs"))
    if inputs is None or outputs is None or len(inputs[1]) != len(outputs[1]):
        return None
    return record, inputs, outputs


def _read_logs(files: list[Path]) -> Current:
    import pandas as pd

    frames, outputs, meta, bad = [], [], [], 0
    for file in files:
        with open(file, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                parsed = _record(raw)
                if parsed is None:
                    bad += 1
                    continue
                record, (columns, data), (out_columns, out_data) = parsed
                frames.append(pd.DataFrame(data, columns=columns))
                outputs.append(pd.DataFrame(out_data, columns=out_columns))
                flags = record.get("deferred")  # only a bento with serving.defer_below
                if not (isinstance(flags, list) and len(flags) == len(data)):
                    flags = [None] * len(data)
                flags = [f if isinstance(f, bool) else None for f in flags]
                meta.append({k: record.get(k) for k in LOG_META} | {"n": len(data), "f": flags})
    notes = []
    if bad:
        log.warning("skipped %d unreadable log line(s)", bad)
        notes.append(
            f"skipped {bad} unreadable log line(s): cut short, not UTF-8, not JSON, or not "
            "the shape a prediction log line has"
        )
    if not frames:
        return Current(pd.DataFrame(), None, notes)
    frame = pd.concat(frames, ignore_index=True)
    logged = pd.concat(outputs, ignore_index=True)
    for key in LOG_META:
        logged[key] = [m[key] for m in meta for _ in range(m["n"])]
    if any(f is not None for m in meta for f in m["f"]):
        logged["deferred"] = pd.Series([f for m in meta for f in m["f"]], dtype=object)
    return Current(frame, logged, notes)


def _log_files(path: Path, service: str | None) -> list[Path]:
    """The service's files under a log root (``<root>/<service>/``) or in its own directory,
    and those older bentos wrote flat in the root; else every ``*.jsonl`` in ``path``."""
    files = []
    if service:
        files = log_files(path / folder_name(service), service) + log_files(path, service)
    return files or sorted(p for p in path.glob("*.jsonl") if p.is_file())


def read_current(path: str | Path, service: str | None = None) -> Current:
    """Read current data: a ``.csv`` or ``.parquet`` file, or a prediction log directory.

    A log directory is the log root (``NB2PROD_LOG_DIR``) or the service's directory in it;
    only ``service``'s files are read there, so several services may share a root. Log lines
    that cannot be read are skipped and counted in a note.

    Raises:
        MonitorError: the path is missing, of another format, unreadable or empty.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MonitorError(f"Current data {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            files = _log_files(path, service)
            if not files:
                raise MonitorError(
                    f"{path} is a directory without prediction logs (*.jsonl files)."
                )
            current = _read_logs(files)
        elif suffix == ".csv":
            current = Current(pd.read_csv(path))
        elif suffix in (".parquet", ".pq"):
            current = Current(pd.read_parquet(path))
        elif suffix == ".jsonl":
            current = _read_logs([path])
        else:
            raise MonitorError(
                f"Current data {path} has an unknown format ({suffix or 'no suffix'}): give a "
                ".csv or .parquet file, or a prediction log directory."
            )
    except MonitorError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MonitorError(f"Cannot read current data {path}: {first}.") from exc
    if current.frame.empty:
        skipped = f" ({current.notes[0]})" if current.notes else ""
        raise MonitorError(f"Current data {path} has no rows{skipped}.")
    return current
