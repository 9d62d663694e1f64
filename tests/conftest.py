"""Shared fixtures: a temporary BentoML store, session-wide example builds, a real server."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import NOTEBOOKS, Built

# Set before anything imports bentoml (it reads BENTOML_HOME once): every test session gets
# its own store, and nothing touches ~/bentoml.
_HOME = Path(tempfile.mkdtemp(prefix="nb2prod-bentoml-"))
os.environ["BENTOML_HOME"] = str(_HOME)
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
# a served bento warms its explainer at start (~2 s of one core); only the test that
# explains asks for it (tests/e2e/test_e2e.py), the other serves would pay it for nothing
os.environ.setdefault("NB2PROD_EXPLAIN_WARM", "0")
# Served bentos log requests; keep the logs of tests out of the home directory.
os.environ.setdefault("NB2PROD_LOG_DIR", str(_HOME / "prediction-logs"))
# Every build is an MLflow run: the session's runs go to its own sqlite store, never to
# ./mlflow.db (always set: a CI that sets MLFLOW_TRACKING_URI must not get the tests' runs).
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_HOME}/mlflow.db"


@pytest.fixture(scope="session", autouse=True)
def bentoml_home() -> Iterator[Path]:
    """The session's temporary BentoML store, removed at the end."""
    yield _HOME
    shutil.rmtree(_HOME, ignore_errors=True)


def _build(name: str, out: Path) -> Built:
    from nb2prod.builder.pipeline import build

    return Built(build(NOTEBOOKS / f"{name}.ipynb", out_dir=out))


@pytest.fixture(scope="session")
def churn(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Built:
    """The churn classifier, built once per session into the temporary store."""
    return _build("churn", tmp_path_factory.mktemp("bentos"))


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Built:
    """The diabetes regressor, built once per session into the temporary store."""
    return _build("diabetes", tmp_path_factory.mktemp("bentos"))
