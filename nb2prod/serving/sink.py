"""The prediction log: each request's validated inputs and outputs, for ``nb2prod monitor``.

The request path only puts a reference on a bounded queue; a daemon thread serializes and
appends one JSON line per request to rotating files, pruning the oldest so the directory
stays under a size cap. A full queue drops the record; a failing directory is logged once.
Neither ever raises into, or waits in, a prediction.

Environment:
    NB2PROD_LOG_DIR: where the files go (``off`` disables logging). Default
        ``~/.local/share/nb2prod/logs/<service>``.
    NB2PROD_LOG_MAX_MB: cap on the directory's ``*.jsonl`` files, in MiB. Default: the
        service's, set when it was built.

This module is copied into every bento as ``nb2prod_sink.py``; the generated ``service.py``
makes the one ``Sink`` with the service's name, version and log size. ``nb2prod monitor``
reads what it writes: the line's fields are ``LOG_META``, ``inputs`` and ``outputs``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ENV_DIR = "NB2PROD_LOG_DIR"
ENV_MAX_MB = "NB2PROD_LOG_MAX_MB"
DEFAULT_DIR = "~/.local/share/nb2prod/logs/{service}"
# The fields of each JSON line besides ``inputs`` and ``outputs`` (``{"columns", "data"}``);
# ``nb2prod monitor`` reads these back as ``_<field>`` columns.
LOG_META = ("request_id", "timestamp", "model_version", "endpoint")
QUEUE_SIZE = 2048  # requests waiting to be written; more are dropped, never waited for
BATCH = 256  # requests written per file append
RETRY_SECONDS = 30.0  # how often a failing directory is tried again

log = logging.getLogger("nb2prod.sink")


class Sink:
    """A bounded, non-blocking writer of request logs to rotating JSON-lines files."""

    def __init__(
        self, directory: str | None, max_bytes: int, service: str, model_version: str
    ) -> None:
        self.directory = Path(directory).expanduser().absolute() if directory else None
        self.service = service
        self.max_bytes = max_bytes
        self.file_bytes = max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))
        self.model_version = model_version
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._file: Any = None
        self._path: Path | None = None
        self._seq = 0
        self._failed_at: float | None = None
        self._size = 0
        self._warned: set[str] = set()

    @classmethod
    def from_env(cls, service: str, model_version: str, max_mb: float) -> Sink:
        """The sink the environment asks for (``NB2PROD_LOG_DIR``, ``NB2PROD_LOG_MAX_MB``);
        ``max_mb`` is the cap when the environment sets none."""
        directory = os.environ.get(ENV_DIR, DEFAULT_DIR.format(service=service)).strip()
        try:
            max_mb = float(os.environ.get(ENV_MAX_MB, max_mb))
        except ValueError:
            pass
        off = directory.lower() in ("", "off", "none", "0")
        return cls(None if off else directory, int(max_mb * 1024 * 1024), service, model_version)

    def log(self, endpoint: str, frame: Any, outputs: Any, columns: list[str]) -> str | None:
        """Queue one request's validated ``frame`` and ``outputs``; return its request id.

        Called on the request path: it never raises and never waits.
        """
        if self.directory is None:
            return None
        try:
            if self._thread is None:
                self._start()
            request_id = uuid.uuid4().hex
            self._queue.put_nowait((time.time(), request_id, endpoint, frame, outputs, columns))
            return request_id
        except queue.Full:
            self.dropped += 1
            self._warn_once(
                "full", "prediction log queue is full; dropping records until it drains"
            )
        except Exception as exc:  # noqa: BLE001 - logging must never fail a prediction
            self._warn_once("log", f"prediction log failed: {exc!r}")
        return None

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` s) until every queued record is written or dropped."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Flush, stop the writer thread and close the file."""
        if self._thread is not None:
            self.flush()
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(timeout=2.0)
        if self._file is not None:
            self._file.close()
            self._file = None

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="nb2prod-sink", daemon=True)
                thread.start()
                self._thread = thread
                atexit.register(self.close)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (%s)", message, self.directory)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not None and len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            records = [i for i in batch if i is not None]
            before = self.written
            try:
                if records:
                    self._write(records)
            except Exception as exc:  # noqa: BLE001 - a disk or serialization problem: drop, warn
                self.dropped += len(records) - (self.written - before)
                self._close_file()
                self._failed_at = time.monotonic()
                self._warn_once("write", f"cannot write the prediction log: {exc!r}")
            finally:
                for _ in batch:
                    self._queue.task_done()
            if item is None or None in batch:
                return

    def _write(self, records: list[tuple]) -> None:
        failing = self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_SECONDS
        if self._file is None and failing:
            self.dropped += len(records)
            return
        for record in records:
            line = self._line(*record)
            if self._file is None or self._size >= self.file_bytes:
                self._rotate()
            self._file.write(line)
            self._size += len(line)  # ASCII: json.dumps and to_json escape the rest
            self.written += 1
        self._file.flush()
        self._failed_at = None

    def _line(
        self,
        ts: float,
        request_id: str,
        endpoint: str,
        frame: Any,
        outputs: Any,
        columns: list[str],
    ) -> str:
        out = np.asarray(outputs)
        out = out.reshape(len(frame), -1) if out.ndim > 1 else out[:, None]
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            out = np.where(np.isfinite(out), out, None)  # JSON has no NaN: null
        head = json.dumps(
            {
                "request_id": request_id,
                "timestamp": dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(
                    timespec="milliseconds"
                ),
                "model_version": self.model_version,
                "service": self.service,
                "endpoint": endpoint,
                "rows": len(frame),
            }
        )
        names = json.dumps([str(c) for c in frame.columns])
        rows = frame.to_json(orient="values", date_format="iso")  # C path; "split" is Python
        preds = json.dumps({"columns": columns, "data": out.tolist()}, default=_plain)
        inputs = '{"columns": ' + names + ', "data": ' + rows + "}"
        return head[:-1] + ', "inputs": ' + inputs + ', "outputs": ' + preds + "}\n"

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _rotate(self) -> None:
        self._close_file()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        self._path = self.directory / f"{self.service}-{stamp}-{os.getpid()}-{self._seq:05d}.jsonl"
        self._prune()
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across writes
        self._size = 0

    def _prune(self) -> None:
        """Delete the oldest log files until the directory fits the cap with one new file."""
        files = []
        for path in self.directory.glob("*.jsonl"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files) + self.file_bytes
        for _, size, path in files:
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size


def _plain(value: Any) -> Any:
    """numpy scalars (in object arrays) as Python values; anything else as its string."""
    return value.item() if isinstance(value, np.generic) else str(value)
