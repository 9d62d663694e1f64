"""A build's lifetime: a work dir stamped with its owner, swept once the owner is dead.

Every build works in a hidden ``out_dir/.<name>-XXXXXXXX`` that holds ``.owner.json`` (pid,
process start time, host). A later build removes the work dirs whose owner is gone (killed,
or the machine rebooted), never a live one. :func:`stopping_cleanly` turns SIGTERM into an
exception while a build runs, so its cleanup (the kernel, the work dir) runs as on Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nb2prod.errors import BentoError

log = logging.getLogger(__name__)
OWNER = ".owner.json"
_WORK_DIR = re.compile(r"\..+-[a-z0-9_]{8}")  # tempfile.mkdtemp(prefix=".<name>-")
_UNSTAMPED_GRACE = 60.0  # s: an empty dir this old without a stamp was never going to get one


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc``), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    # fields[0] is the state; a zombie is dead for our purposes
    return None if fields[0] == "Z" else fields[19]


def owner() -> dict[str, Any]:
    """The stamp of this process: pid, start time and host."""
    return {"pid": os.getpid(), "started": _start_time(os.getpid()), "host": socket.gethostname()}


def alive(stamp: dict[str, Any]) -> bool:
    """Whether the process ``stamp`` names still runs. Unknown counts as alive."""
    if stamp.get("host") != socket.gethostname():
        return True  # a build on another machine sharing this folder
    pid = int(stamp["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    started = _start_time(pid)
    if stamp.get("started") is None or not Path("/proc").is_dir():
        return True
    return started == stamp["started"]  # None (zombie) or another start: the pid was reused


def make_work_dir(out_dir: Path, name: str) -> Path:
    """A new hidden work dir in ``out_dir``, stamped with this process.

    Raises:
        BentoError: ``out_dir`` cannot be written (read-only, full, not a folder).
    """
    work = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out_dir))
        (work / OWNER).write_text(json.dumps(owner()), encoding="utf-8")
    except OSError as exc:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise BentoError(
            f"Cannot write the build output to {out_dir}: {exc.strerror or exc} "
            "(choose another folder with --out).",
            path=str(out_dir),
        ) from exc
    return work


def stop_children_in(work: Path) -> list[int]:
    """SIGKILL this process's children whose command line names a path in ``work`` (the
    training kernel, the gate's tests); the pids. Linux only (``/proc``); elsewhere none.

    A kernel still starting when the build was stopped writes its connection file after the
    work dir is gone, and so makes the folder again. Only processes started on this work dir
    are touched: a Jupyter server's own kernels, in whose process a build job runs, are not.
    """
    killed, me, mark = [], os.getpid(), str(work)
    try:
        entries = [e for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return killed
    for entry in entries:
        try:
            stat = Path(entry.path, "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != me:
                continue
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
            if mark in cmdline.decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return killed


def remove(work: Path, *, within: float = 5.0) -> None:
    """Remove a stopped build's work dir, and keep at it while something still writes there.

    The processes started on it are killed first (:func:`stop_children_in`). nbclient runs the
    kernel's event loop in a thread of its own, which goes on for a moment after a signal
    stopped the build (it writes the executed notebook, the kernel manager removes its
    files), so one ``rmtree`` can race it and leave the folder behind.
    """
    stop_children_in(work)
    deadline = time.monotonic() + within
    while True:
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def sweep(out_dir: Path) -> list[Path]:
    """Remove the work dirs in ``out_dir`` whose build is dead; the ones removed."""
    removed = []
    try:
        candidates = [p for p in out_dir.iterdir() if _WORK_DIR.fullmatch(p.name) and p.is_dir()]
    except OSError:
        return removed
    for work in candidates:
        try:
            stamp = json.loads((work / OWNER).read_text(encoding="utf-8"))
            dead = not alive(stamp)
        except FileNotFoundError:
            # killed between mkdtemp and the stamp: empty, and old enough to be sure
            dead = _unstamped_and_stale(work)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or unreadable: leave it
        if dead:
            shutil.rmtree(work, ignore_errors=True)
            log.info("removed %s, left by a build that was killed", work)
            removed.append(work)
    return removed


def _unstamped_and_stale(work: Path) -> bool:
    try:
        return not any(work.iterdir()) and time.time() - work.stat().st_mtime > _UNSTAMPED_GRACE
    except OSError:
        return False


def finish(work: Path) -> None:
    """Drop the stamp: the work dir is about to become the build dir."""
    (work / OWNER).unlink(missing_ok=True)


@contextmanager
def stopping_cleanly() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise ``SystemExit(128 + signal)`` (in the main
    thread only).

    The build then unwinds: papermill shuts the kernel down, the work dir and any store
    entries are removed. SIGINT is handled here too, not left to ``KeyboardInterrupt``, which
    the kernel client may catch while it waits on the kernel. A second signal during that
    cleanup is ignored; SIGKILL still ends it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # a Jupyter server's build job: signals belong to the server
        return
    signals = (signal.SIGTERM, signal.SIGINT)

    def stop(signum: int, frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
