"""Run a build's generated tests (the build gate, and ``nb2prod test``) and report failures."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.errors import Nb2ProdError, PropertyFailed
from nb2prod.properties import BY_KEY, PROPERTIES

log = logging.getLogger(__name__)
TIMEOUT = 1800  # seconds for the whole generated test run
_MARKER = re.compile(r"^# %% (?P<nb>.+) · cell (?P<index>\d+) \((?P<id>[^)]*)\)$")
_ORDER = {p.test: i for i, p in enumerate(PROPERTIES)}


@dataclass
class TestRun:
    """The outcome of one run of the generated tests."""

    __test__ = False  # not a pytest test class, despite the name

    src: Path
    seed: int
    results: list[dict[str, Any]]
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)
    replay: str | None = None  # set when src is a temporary copy
    stopped: bool = False  # the run stopped at the first failure

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Failed tests, the likeliest cause first (see ``properties.PROPERTIES``)."""
        bad = [r for r in self.results if r["outcome"] in ("failed", "error")]
        return sorted(bad, key=lambda r: _ORDER.get(r["test"], -1))

    @property
    def passed(self) -> list[str]:
        return [r["test"] for r in self.results if r["outcome"] == "passed"]


def words(test: str) -> str:
    """A test's property in words (``rows kept``), or the test's own name."""
    key = test.removeprefix("test_")
    return BY_KEY[key].words if key in BY_KEY else test


def _cell_line(src: Path, file: str, line: int) -> str | None:
    """``churn.ipynb cell 10 (id b40f101f), line 4: <source>`` for a line of lifted code."""
    path = Path(file)
    if not path.is_absolute():
        path = src / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for start in range(min(line, len(lines)) - 1, -1, -1):
        match = _MARKER.match(lines[start])
        if match:
            first = start + 2 if lines[start + 1 : start + 2] == ["# fmt: off"] else start + 1
            code = lines[line - 1].strip()
            where = f"{match['nb']} cell {match['index']} (id {match['id']})"
            return f"{where}, line {line - first}: {code}"
    return None


def render(run: TestRun, *, notebook: str, entry: str, model_file: Path | None) -> str:
    """The failure report printed above the one-line error: one block per failed test."""
    out = []
    env = f"NB2PROD_MODEL_FILE={model_file} " if model_file else ""
    first_error = run.failed[0].get("error") if run.failed else None
    for n, result in enumerate(run.failed):
        test = result["test"]
        prop = BY_KEY.get(test.removeprefix("test_"))
        if n and result.get("error") == first_error:
            out.append(f"✗ also failed: {words(test)}, with the same error")
            continue
        out.append(f"✗ property failed: {words(test)}" if prop else f"✗ {test} failed")
        out.append(f"  {prop.promise if prop else result['doc']}")
        out.append(f"  entry point: {entry}")
        error = str(result.get("error", "")).strip()
        out.append("  what happened: " + _indent(_shorten(error), 4).lstrip())
        for frame in result.get("lifted") or []:
            where = _cell_line(run.src, frame["file"], frame["line"])
            if where:
                out.append(f"  raised in {where}")
        if result.get("frame"):
            title, _, table = result["frame"].partition("\n")
            out.append(
                f"  smallest falsifying {title.replace('input frame', 'frame').rstrip(':')}:"
            )
            out.append(_indent(table, 4))
        if result["when"] != "collect" and run.replay:
            out.append(f"  reproduce: {run.replay}")
        elif result["when"] != "collect":
            out.append(f"  reproduce (in {run.src}):")
            out.append(
                f"    {env}{sys.executable} -m pytest "
                f"'tests/test_properties.py::{test}' --hypothesis-seed={run.seed}"
                if prop
                else f"    {env}{sys.executable} -m pytest tests -k {test}"
            )
            if result.get("reproduce"):
                out.append(f"    or add {result['reproduce']} above `def {test}`")
        out.append("")
    if run.stopped:
        out.append(
            "The gate stops at the first failed test, in the order above; "
            f"`nb2prod test {run.src.parent}` runs them all."
        )
    for key, reason in run.skipped.items():
        out.append(f"- skipped: {BY_KEY[key].words} ({reason})")
    return "\n".join(out).rstrip() + "\n"


def _shorten(text: str, lines: int = 12) -> str:
    """The first lines of an error, without pytest's rewritten ``assert ...`` echo."""
    kept = text.splitlines()
    echo = next((i for i, line in enumerate(kept) if line.startswith("assert ")), len(kept))
    kept = kept[:echo]
    return "\n".join(kept[:lines] + (["..."] if len(kept) > lines else []))


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _manifest(src: Path) -> dict[str, Any]:
    try:
        return json.loads((src / "nb2prod.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _entry(manifest: dict[str, Any], notebook: str) -> str:
    cell = (manifest.get("properties") or {}).get("entrypoint_cell")
    name = manifest.get("entrypoint")
    if not name:
        return "none (the notebook has no features cell)"
    where = f"{notebook} cell {cell['index']} (id {cell['id']})" if cell else notebook
    return f"`{name}` in {where}"


def run_tests(
    src: Path,
    model_file: Path | None = None,
    *,
    notebook: str = "",
    seed: int | None = None,
    replay: str | None = None,
    first_failure: bool = True,
) -> TestRun:
    """Run ``src/tests`` with pytest in a fresh interpreter; raise on any failure.

    Args:
        src: a generated ``src`` directory (build directory or bento).
        model_file: the pickled model, when it is not in the BentoML store yet.
        notebook: the notebook's name, for the error message.
        seed: Hypothesis's seed; random (and reported) when not given.
        replay: the command that reruns the tests, when ``src`` is a temporary copy
            (``{seed}`` is filled in).
        first_failure: stop at the first failed test. The tests run in the order of
            diagnosis, so the first failure is the one to fix; shrinking the others'
            examples would only repeat it, at a cost.

    Raises:
        PropertyFailed: a test failed. ``fields["report"]`` names each failed property, the
            entry point's cell, the smallest falsifying frame and how to reproduce it.
    """
    import time

    src = Path(src).resolve()
    seed = random.randrange(1, 10**6) if seed is None else seed
    manifest = _manifest(src)
    notebook = notebook or manifest.get("notebook") or str(src)
    with tempfile.TemporaryDirectory(prefix="nb2prod-tests-") as tmp:
        report_file = Path(tmp) / "report.json"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NB2PROD_REPORT": str(report_file)}
        if model_file is not None:
            env["NB2PROD_MODEL_FILE"] = str(model_file)
        cmd = [
            sys.executable, "-m", "pytest", "tests", "-q", "--no-header", "-p", "no:cacheprovider",
            "-o", "addopts=", "--rootdir", str(src), f"--hypothesis-seed={seed}",
        ] + (["--maxfail=1"] if first_failure else [])  # fmt: skip
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, cwd=src, env=env, capture_output=True, text=True, check=False, timeout=TIMEOUT
            )
        except subprocess.TimeoutExpired as exc:
            raise PropertyFailed(
                f"{notebook}: the generated tests ran longer than {TIMEOUT} s; lower "
                "nb2prod.properties.examples or max_rows in the notebook metadata.",
                seed=seed,
            ) from exc
        log.debug("generated tests (seed %s):\n%s", seed, proc.stdout)
        data = json.loads(report_file.read_text()) if report_file.exists() else {"results": []}
    skipped = (manifest.get("properties") or {}).get("skipped") or {}
    run = TestRun(src, seed, data["results"], time.monotonic() - started, dict(skipped))
    if proc.returncode == 0:
        return run
    if not run.failed:  # pytest itself failed: no tests, a broken conftest, ...
        raise PropertyFailed(
            f"{notebook}: the generated tests could not run (pytest exit {proc.returncode}); "
            "pytest's output is above.",
            report=(proc.stdout + proc.stderr)[-20000:],
            seed=seed,
        )
    run.replay = replay.format(seed=seed) if replay else None
    run.stopped = first_failure
    raise _failure(run, notebook, _entry(manifest, notebook), model_file)


def _failure(run: TestRun, notebook: str, entry: str, model_file: Path | None) -> PropertyFailed:
    first, rest = run.failed[0], run.failed[1:]
    also = f"; also failed: {', '.join(words(r['test']) for r in rest)}" if rest else ""
    what = (
        f"property `{words(first['test'])}` failed for the entry point {entry}"
        if first["test"].removeprefix("test_") in BY_KEY
        else f"generated test {first['test']} failed ({first['doc']})"
    )
    return PropertyFailed(
        f"{notebook}: {what}{also}. The falsifying frame and how to reproduce it are above "
        f"(seed {run.seed}).",
        report=render(run, notebook=notebook, entry=entry, model_file=model_file),
        property=first["test"].removeprefix("test_"),
        failed=[r["test"].removeprefix("test_") for r in run.failed],
        seed=run.seed,
    )


def run_target(target: str | Path, *, seed: int | None = None) -> TestRun:
    """``nb2prod test``: run a build directory's or a stored bento's generated tests.

    Args:
        target: a build directory (``bentos/<name>-<version>``), its ``src/``, or a bento tag.
        seed: Hypothesis's seed; random when not given.

    Raises:
        Nb2ProdError: the target is neither a build directory nor a bento in the store.
        PropertyFailed: a generated test failed.
    """
    path = Path(target)
    if path.is_dir():
        src = path / "src" if (path / "src" / "tests").is_dir() else path
        if not (src / "tests").is_dir():
            raise Nb2ProdError(f"{path} is not an nb2prod build directory (it has no src/tests).")
        model = src.parent / "train" / "model.pkl"
        return run_tests(src, model if model.exists() else None, seed=seed, first_failure=False)
    import bentoml
    from bentoml.exceptions import BentoMLException

    try:
        bento = bentoml.get(str(target))
    except BentoMLException as exc:
        raise Nb2ProdError(
            f"{target} is neither a build directory nor a bento in the store ({exc})."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="nb2prod-test-") as tmp:
        # A copy, so nothing the tests write lands inside the store.
        src = Path(tmp) / "src"
        shutil.copytree(Path(bento.path) / "src", src)
        replay = f"nb2prod test {target} --seed {{seed}}"
        return run_tests(src, seed=seed, replay=replay, first_failure=False)


def keep_failed(exc: PropertyFailed, work: Path, target: Path) -> None:
    """Keep a build that failed its gate at ``target`` (src/ and train/), to replay the failure.

    The report's paths are rewritten to point there; ``nb2prod test <target>`` reruns it.
    """
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(work), str(target))
    for key in ("report",):
        if key in exc.fields:
            exc.fields[key] = exc.fields[key].replace(str(work), str(target))
    seed = exc.fields.get("seed")
    exc.message += f" Rerun: nb2prod test {target}" + (f" --seed {seed}" if seed else "") + "."
    exc.args = (exc.message,)
    exc.fields["kept"] = str(target)
