"""Current data for ``nb2prod monitor``: a CSV or parquet file, or a prediction log directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nb2prod.errors import MonitorError
from nb2prod.serving.sink import LOG_META

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger(__name__)


def _read_logs(files: list[Path]) -> pd.DataFrame:
    import pandas as pd

    frames, outputs, meta, bad = [], [], [], 0
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    inputs, outs = record["inputs"], record["outputs"]
                except (ValueError, KeyError, TypeError):
                    bad += 1  # a line cut short by a crash or by rotation
                    continue
                frames.append(pd.DataFrame(inputs["data"], columns=inputs["columns"]))
                outputs.append(pd.DataFrame(outs["data"], columns=outs["columns"]))
                meta.append({k: record.get(k) for k in LOG_META} | {"n": len(inputs["data"])})
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    outs = pd.concat(outputs, ignore_index=True)
    for key in LOG_META:
        frame[f"_{key}"] = [m[key] for m in meta for _ in range(m["n"])]
    if bad:
        log.warning("skipped %d unreadable log line(s)", bad)
    return pd.concat([frame, outs], axis=1)


def read_current(path: str | Path, service: str | None = None) -> pd.DataFrame:
    """Read current data: a ``.csv`` or ``.parquet`` file, or a directory of prediction logs.

    In a log directory that several services share, only ``<service>-*.jsonl`` are read.

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
            files = sorted(path.glob(f"{service}-*.jsonl")) if service else []
            files = files or sorted(path.glob("*.jsonl"))
            if not files:
                raise MonitorError(
                    f"{path} is a directory without prediction logs (*.jsonl files)."
                )
            frame = _read_logs(files)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix == ".jsonl":
            frame = _read_logs([path])
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
    if frame.empty:
        raise MonitorError(f"Current data {path} has no rows.")
    return frame
