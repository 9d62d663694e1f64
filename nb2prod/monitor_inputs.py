"""Inputs of ``nb2prod monitor``: find a bento's monitoring folder, read current data."""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2prod.errors import MonitorError
from nb2prod.monitoring import CONFIG, FOLDER

log = logging.getLogger(__name__)
LOG_META = ("request_id", "timestamp", "model_version", "endpoint")


@dataclass
class Bento:
    """A bento's ``src/`` (store, ``.bento`` file or build directory) and its model file."""

    src: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    model_file: Path | None


def _src_dir(path: Path) -> Path | None:
    for candidate in (path, path / "src"):
        if (candidate / "nb2prod.json").is_file():
            return candidate
    return None


def _finish(src: Path, model_file: Path | None) -> Bento:
    manifest = json.loads((src / "nb2prod.json").read_text(encoding="utf-8"))
    config_file = src / FOLDER / CONFIG
    if not config_file.is_file():
        raise MonitorError(
            f"{manifest.get('tag', src)} has no monitoring config ({FOLDER}/{CONFIG}); "
            "rebuild it with this nb2prod to attach one."
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return Bento(src, manifest, config, model_file)


def store_model(tag: str) -> Path | None:
    """The model file of ``tag`` in the BentoML store, or None (looked up only when needed)."""
    try:
        import bentoml

        return Path(bentoml.models.get(tag).path_of("model.pkl"))
    except Exception:  # not in this store: prediction drift then needs logged predictions
        log.debug("model %s not found", tag, exc_info=True)
        return None


@contextmanager
def open_bento(target: str | Path) -> Iterator[Bento]:
    """Find the bento named by ``target``: a build directory, a ``.bento`` file or a store tag.

    Raises:
        MonitorError: nothing of that name exists, or it has no monitoring config.
    """
    path = Path(target)
    if path.is_dir():
        src = _src_dir(path)
        if src is None:
            raise MonitorError(f"{path} is not a build directory: it has no nb2prod.json.")
        model = src.parent / "train" / "model.pkl"
        bento = _finish(src, model if model.is_file() else None)
        yield bento
        return
    if path.is_file():
        tmp = Path(tempfile.mkdtemp(prefix="nb2prod-monitor-"))
        try:
            try:
                with tarfile.open(path) as archive:
                    archive.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise MonitorError(f"{path} is not a .bento archive ({exc}).") from exc
            src = _src_dir(tmp)
            if src is None:
                raise MonitorError(
                    f"{path} is not a bento made by nb2prod: it has no nb2prod.json."
                )
            models = sorted(tmp.glob("models/*/*/model.pkl"))
            yield _finish(src, models[0] if models else None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        import bentoml

        found = bentoml.get(str(target))
    except Exception as exc:
        raise MonitorError(
            f"No bento `{target}`: it is not a build directory, a .bento file or a tag in the "
            "BentoML store (bentoml list)."
        ) from exc
    yield _finish(Path(found.path_of("src")), None)


def _read_logs(files: list[Path]) -> Any:
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


def read_current(path: str | Path, service: str | None = None) -> Any:
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
