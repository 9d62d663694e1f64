"""The prediction log: each request's validated inputs and outputs, for ``nb2prod monitor``.

The request path only puts a reference on a bounded queue; a daemon thread serializes and
appends one JSON line per request to rotating files, pruning the oldest so the service's
files stay under a size cap. A full queue drops the record; a failing directory is logged
once. Neither ever raises into, or waits in, a prediction.

Layout: ``<NB2PROD_LOG_DIR>/<service>/<service>-<UTC start>-<pid>-<seq>.jsonl``. The sink
creates the service's directory (mode 0700) and writes only there: it refuses a directory
that is a symbolic link or that another user owns (one warning, then logging is off), and
opens each file with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (mode 0600), so a planted link or file
is never written through. Pruning deletes only this service's own files, in its directory.

Environment:
    NB2PROD_LOG_DIR: the log root (``off`` disables logging). Default
        ``~/.local/share/nb2prod/logs``.
    NB2PROD_LOG_MAX_MB: cap on this service's log files, in MiB. Default: the service's,
        set when it was built.

This module is copied into every bento as ``nb2prod_sink.py``; the generated ``service.py``
makes the one ``Sink`` with the service's name, version and log size. ``nb2prod monitor``
reads what it writes: the line's fields are ``LOG_META``, ``inputs`` and ``outputs``, and
its files are the ones ``log_files`` names.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
import queue
import re
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import numpy as np

ENV_DIR = "NB2PROD_LOG_DIR"
ENV_MAX_MB = "NB2PROD_LOG_MAX_MB"
DEFAULT_ROOT = "~/.local/share/nb2prod/logs"
# The fields of each JSON line besides ``inputs`` and ``outputs`` (``{"columns", "data"}``);
# ``nb2prod monitor`` reads them back apart from the input columns, so no name collides.
LOG_META = ("request_id", "timestamp", "model_version", "endpoint")
QUEUE_SIZE = 2048  # requests waiting to be written; more are dropped, never waited for
BATCH = 256  # requests written per file append
RETRY_SECONDS = 30.0  # how often a failing directory is tried again
DIR_MODE = 0o700
FILE_MODE = 0o600
NAME_TRIES = 64  # file names tried past ones that already exist (planted or not)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _NOFOLLOW | _CLOEXEC
# Where the OS can, every file operation is relative to the directory opened (and checked)
# once, so swapping the directory for a link afterwards changes nothing.
_DIR_FD = {os.open, os.stat, os.unlink} <= os.supports_dir_fd and os.scandir in os.supports_fd

log = logging.getLogger("nb2prod.sink")


def folder_name(service: str) -> str:
    """The service's directory (and file prefix) name: the name, made safe as one path part."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", service).lstrip(".")
    return safe or "service"


def file_pattern(service: str) -> re.Pattern[str]:
    """The names of the log files ``service`` writes, and no other service's."""
    return re.compile(rf"{re.escape(folder_name(service))}-\d{{8}}T\d{{6}}-\d+-\d+\.jsonl")


def log_files(folder: Path, service: str) -> list[Path]:
    """``service``'s log files in ``folder``, oldest first (their names start with a UTC time)."""
    pattern = file_pattern(service)
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if pattern.fullmatch(p.name) and p.is_file()]


class Refused(Exception):
    """The service's log directory is not one this process may write to."""


class Sink:
    """A bounded, non-blocking writer of request logs to rotating JSON-lines files."""

    def __init__(self, root: str | None, max_bytes: int, service: str, model_version: str) -> None:
        self.root = Path(root).expanduser().absolute() if root else None
        self.service = service
        self.directory = self.root / folder_name(service) if self.root else None
        self.max_bytes = max_bytes
        self.file_bytes = max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))
        self.model_version = model_version
        self.written = 0
        self.dropped = 0
        self.off = self.directory is None  # no directory, or one refused: nothing is queued
        self._pattern = file_pattern(service)
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._file: IO[str] | None = None
        self._dir_fd: int | None = None
        self._seq = 0
        self._failed_at: float | None = None
        self._size = 0
        self._warned: set[str] = set()

    @classmethod
    def from_env(cls, service: str, model_version: str, max_mb: float) -> Sink:
        """The sink the environment asks for (``NB2PROD_LOG_DIR``, ``NB2PROD_LOG_MAX_MB``);
        ``max_mb`` is the cap when the environment sets none."""
        root = os.environ.get(ENV_DIR, DEFAULT_ROOT).strip()
        try:
            max_mb = float(os.environ.get(ENV_MAX_MB, max_mb))
        except ValueError:
            pass
        off = root.lower() in ("", "off", "none", "0")
        return cls(None if off else root, int(max_mb * 1024 * 1024), service, model_version)

    def log(
        self,
        endpoint: str,
        frame: Any,
        outputs: Any,
        columns: list[str],
        *,
        client: str | None = None,
        deferred: list[bool] | None = None,
    ) -> str | None:
        """Queue one request's validated ``frame`` and ``outputs``; return its request id.

        ``client`` is the API key's *name* (nb2prod_keys), never the key; None when anonymous.
        ``deferred`` (``serving.defer_below`` on): per row, whether a person decides it; the
        line then carries it as ``"deferred"``, a list of booleans beside ``outputs``.

        Called on the request path: it never raises and never waits.
        """
        if self.off:
            return None
        try:
            if self._thread is None:
                self._start()
            request_id = uuid.uuid4().hex
            record = (time.time(), request_id, endpoint, frame, outputs, columns, client, deferred)
            self._queue.put_nowait(record)
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
        """Flush, stop the writer thread and close the file and the directory."""
        if self._thread is not None:
            self.flush()
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(timeout=2.0)
        self._close_file()
        self._close_dir()

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
            except Refused as exc:
                self.off = True
                self.dropped += len(records)
                self._close_file()
                self._close_dir()
                self._warn_once("refused", f"prediction log off: {exc}")
            except Exception as exc:  # noqa: BLE001 - a disk or serialization problem: drop, warn
                self.dropped += len(records) - (self.written - before)
                self._close_file()
                self._close_dir()
                self._failed_at = time.monotonic()
                self._warn_once("write", f"cannot write the prediction log: {exc!r}")
            finally:
                for _ in batch:
                    self._queue.task_done()
            if item is None or None in batch:
                return

    def _write(self, records: list[tuple]) -> None:
        failing = self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_SECONDS
        if self.off or (self._file is None and failing):
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
        client: str | None = None,
        deferred: list[bool] | None = None,
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
                **({"client": client} if client is not None else {}),
            }
        )
        names = json.dumps([str(c) for c in frame.columns])
        rows = frame.to_json(orient="values", date_format="iso")  # C path; "split" is Python
        preds = json.dumps({"columns": columns, "data": out.tolist()}, default=_plain)
        inputs = '{"columns": ' + names + ', "data": ' + rows + "}"
        flags = "" if deferred is None else ', "deferred": ' + json.dumps(list(map(bool, deferred)))
        return head[:-1] + ', "inputs": ' + inputs + ', "outputs": ' + preds + flags + "}\n"

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _close_dir(self) -> None:
        if self._dir_fd is not None:
            try:
                os.close(self._dir_fd)
            except OSError:
                pass
            self._dir_fd = None

    def _open_dir(self) -> None:
        """Create (0700) and open the service's directory; refuse a link or another's."""
        assert self.root is not None and self.directory is not None
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.directory, DIR_MODE)
        except FileExistsError:
            pass
        found = os.lstat(self.directory)
        if stat.S_ISLNK(found.st_mode):
            raise Refused(f"{self.directory} is a symbolic link, not a directory of its own")
        if not stat.S_ISDIR(found.st_mode):
            raise Refused(f"{self.directory} is not a directory")
        if _DIR_FD:
            flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
            try:
                fd = os.open(self.directory, flags)
            except OSError as exc:  # swapped for a link since the lstat
                raise Refused(f"{self.directory} cannot be opened as a directory ({exc})") from exc
            found = os.fstat(fd)
            self._dir_fd = fd
        if hasattr(os, "geteuid") and found.st_uid != os.geteuid():
            self._close_dir()
            raise Refused(
                f"{self.directory} belongs to user id {found.st_uid}, not to this process's "
                f"({os.geteuid()})"
            )

    def _where(self, name: str) -> tuple[str, int | None]:
        """``name`` as the OS calls take it: relative to the open directory where possible."""
        if self._dir_fd is not None:
            return name, self._dir_fd
        return str(self.directory / name), None

    def _rotate(self) -> None:
        self._close_file()
        if self._dir_fd is None:
            self._open_dir()
        self._prune()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        for _ in range(NAME_TRIES):
            self._seq += 1
            name = f"{folder_name(self.service)}-{stamp}-{os.getpid()}-{self._seq:05d}.jsonl"
            path, dir_fd = self._where(name)
            try:
                fd = os.open(path, OPEN_FLAGS, FILE_MODE, dir_fd=dir_fd)
            except FileExistsError:  # never append to a file (or link) this sink did not create
                self._warn_once("exists", f"skipping log file names that already exist ({name})")
                continue
            self._file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - kept open across writes
            self._size = 0
            return
        raise OSError(f"no free log file name after {NAME_TRIES} tries")

    def _prune(self) -> None:
        """Delete this service's oldest files until they fit the cap with one new file."""
        files = []
        target = self._dir_fd if self._dir_fd is not None else self.directory
        with os.scandir(target) as entries:
            for entry in entries:
                if not self._pattern.fullmatch(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    files.append((info.st_mtime, entry.name, info.st_size))
        files.sort()
        total = sum(size for _, _, size in files) + self.file_bytes
        for _, name, size in files:
            if total <= self.max_bytes:
                break
            path, dir_fd = self._where(name)
            try:
                os.unlink(path, dir_fd=dir_fd)
            except OSError:
                continue
            total -= size


def _plain(value: Any) -> Any:
    """numpy scalars (in object arrays) as Python values; anything else as its string."""
    return value.item() if isinstance(value, np.generic) else str(value)
