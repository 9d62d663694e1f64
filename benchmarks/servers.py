"""Start a server process on a free loopback port, wait until it is ready, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running server: its process, base URL and log file."""

    proc: subprocess.Popen
    url: str
    log: Path

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout:.0f} s; see {self.log}")
            time.sleep(0.25)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the whole process group and wait; SIGKILL after ``timeout``."""
        try:
            os.killpg(self.proc.pid, sig)
            return self.proc.wait(timeout=timeout)
        except ProcessLookupError:
            return self.proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def bentoml_command(target: str, port: int, *extra: str) -> list[str]:
    """``bentoml serve target`` on 127.0.0.1:port."""
    return [
        str(BIN / "bentoml"),
        "serve",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


def uvicorn_command(app: str, port: int) -> list[str]:
    """One uvicorn worker serving ``module:app`` on 127.0.0.1:port, with its default logging."""
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def running(
    command: Callable[[int], Sequence[str]],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Iterator[Server]:
    """Run ``command(port)`` on a free port until the block ends; yield the :class:`Server`.

    The server gets its own session, so stopping it stops its workers too.
    """
    port = free_port()
    cmd = list(command(port))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"server-{port}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            # no explainer warm-up (~8 s of one core at start) under the figures: the explain
            # case times the first /explain, cold, on its own
            env={
                **os.environ,
                "BENTOML_DO_NOT_TRACK": "true",
                "NB2PROD_EXPLAIN_WARM": "0",
                **(env or {}),
            },
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        if wait:
            server.wait_ready()
        yield server
    finally:
        if proc.poll() is None:
            server.stop()
