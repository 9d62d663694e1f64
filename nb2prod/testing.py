"""Run a build's generated tests (the build gate, and ``nb2prod test``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from nb2prod.errors import PropertyFailed

log = logging.getLogger(__name__)


def run_tests(src: Path, model_file: Path | None = None, *, notebook: str = "") -> None:
    """Run ``src/tests`` with pytest in a fresh interpreter; raise on any failure.

    Args:
        src: a generated ``src`` directory (build directory or bento).
        model_file: the pickled model, when it is not in the BentoML store yet.
        notebook: the notebook's name, for the error message.
    """
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if model_file is not None:
        env["NB2PROD_MODEL_FILE"] = str(model_file)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", "tests"]
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, check=False)
    log.debug("generated tests:\n%s", proc.stdout)
    if proc.returncode != 0:
        failed = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        summary = failed[0] if failed else proc.stdout.strip().splitlines()[-1:]
        raise PropertyFailed(
            f"{notebook or src}: the generated tests failed ({summary}); the report is above.",
            report=proc.stdout[-20000:],
        )
