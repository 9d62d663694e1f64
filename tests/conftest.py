"""Shared fixtures: a temporary BentoML store, session-wide example builds, a real server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BIN = Path(sys.executable).parent


# Set before anything imports bentoml (it reads BENTOML_HOME once): every test session gets
# its own store, and nothing touches ~/bentoml.
_HOME = Path(tempfile.mkdtemp(prefix="nb2prod-bentoml-"))
os.environ["BENTOML_HOME"] = str(_HOME)
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
# Served bentos log requests; keep the logs of tests out of the home directory.
os.environ.setdefault("NB2PROD_LOG_DIR", str(_HOME / "prediction-logs"))


@pytest.fixture(scope="session", autouse=True)
def bentoml_home() -> Iterator[Path]:
    """The session's temporary BentoML store, removed at the end."""
    yield _HOME
    shutil.rmtree(_HOME, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: missing values as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


@contextmanager
def serve(
    target: str, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run ``bentoml serve target`` on a free loopback port; yield its base URL; stop it."""
    import httpx

    port = free_port()
    log = open(Path(os.environ["BENTOML_HOME"]) / f"serve-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(BIN / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bentoml serve not ready after 120 s; see {log.name}")
            time.sleep(0.3)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


class Built:
    """A finished example build: its result and the paths tests look at."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.tag: str = result.tag
        self.src: Path = result.build_dir / "src"
        self.manifest: dict[str, Any] = json.loads((self.src / "nb2prod.json").read_text())

    def reference(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.src / "monitoring" / "reference.parquet")

    def notebook_predictions(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.src / "monitoring" / "predictions.parquet")


def _build(name: str, out: Path) -> Built:
    from nb2prod.build import build

    return Built(build(NOTEBOOKS / f"{name}.ipynb", out_dir=out))


@pytest.fixture(scope="session")
def churn(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Built:
    """The churn classifier, built once per session into the temporary store."""
    return _build("churn", tmp_path_factory.mktemp("bentos"))


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Built:
    """The diabetes regressor, built once per session into the temporary store."""
    return _build("diabetes", tmp_path_factory.mktemp("bentos"))
