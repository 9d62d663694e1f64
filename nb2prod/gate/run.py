"""Run a bento's generated tests (the build gate, and ``nb2prod test``); word their failure."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.bento.locate import open_bento
from nb2prod.builder.lift import MARKER_PATTERN
from nb2prod.errors import PropertyFailed
from nb2prod.gate.properties import BY_KEY, PROPERTIES

log = logging.getLogger(__name__)
TIMEOUT = 1800  # seconds for the whole generated test run
_ORDER = {p.test: i for i, p in enumerate(PROPERTIES)}
_UNLOADED = "ModelNotLoaded:"  # how a result names nb2prod_runtime.ModelNotLoaded


@dataclass
class TestRun:
    """The outcome of one run of the generated tests."""

    __test__ = False  # not a pytest test class, despite the name

    src: Path
    seed: int
    results: list[dict[str, Any]]
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)
    replay: str | None = None  # the command that reruns the tests, when src is a temporary copy
    stopped: bool = False  # the run stopped at the first failure
    returncode: int = 0
    output: str = ""  # pytest's own output, for when it could not run the tests at all

    @property
    def ok(self) -> bool:
        return self.returncode == 0

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
        match = MARKER_PATTERN.match(lines[start])
        if match:
            first = start + 2 if lines[start + 1 : start + 2] == ["# fmt: off"] else start + 1
            code = lines[line - 1].strip()
            where = f"{match['nb']} cell {match['index']} (id {match['id']})"
            return f"{where}, line {line - first}: {code}"
    return None


def failure_report(run: TestRun, *, entry: str, model_file: Path | None) -> str:
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
    first_failure: bool = True,
) -> TestRun:
    """Run ``src/tests`` with pytest in a fresh interpreter and collect each test's result.

    Args:
        src: a generated ``src`` directory (build directory or bento).
        model_file: the pickled model, when it is not in the BentoML store yet.
        notebook: the notebook's name, for the timeout message.
        seed: Hypothesis's seed; random (and reported) when not given.
        first_failure: stop at the first failed test. The tests run in the order of
            diagnosis, so the first failure is the one to fix; shrinking the others'
            examples would only repeat it, at a cost.

    Returns:
        The run; ``run.ok`` is false when a test failed or pytest could not run them
        (:func:`failure` words it).

    Raises:
        PropertyFailed: the tests ran past the timeout.
    """
    import time

    from nb2prod.serving.conftest import RESULTS_ENV  # it imports pytest: only when tests run

    src = Path(src).resolve()
    seed = random.randrange(1, 10**6) if seed is None else seed
    manifest = _manifest(src)
    notebook = notebook or manifest.get("notebook") or str(src)
    if model_file is not None:
        # the tests run in src/: a path relative to the caller's directory would name nothing
        model_file = Path(model_file).resolve()
        if not model_file.is_file():
            raise PropertyFailed(
                f"{notebook}: the generated tests cannot run, because the model file "
                f"{model_file} does not exist.",
                seed=seed,
            )
    with tempfile.TemporaryDirectory(prefix="nb2prod-tests-") as tmp:
        results_file = Path(tmp) / "results.json"
        env = {
            **os.environ,
            # The bento's src/ stays as built. Libraries' bytecode comes from the install
            # (`make install` compiles it: uv does not by default, and reading every library
            # from source cost ~10 s of each run)
            "PYTHONDONTWRITEBYTECODE": "1",
            RESULTS_ENV: str(results_file),
            # Hypothesis keeps a cache of constants; not in the bento's src/
            "HYPOTHESIS_STORAGE_DIRECTORY": str(Path(tmp) / "hypothesis"),
            # Only Hypothesis's plugin (-p below): the others installed here (schemathesis,
            # faker, anyio, ...) took seconds to import and serve none of these tests. Nor
            # pytest's unraisable-exception warnings, whose garbage collection of pandas and
            # scikit-learn at exit took ~0.4 s: a warning never decides the gate.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        if model_file is not None:
            env["NB2PROD_MODEL_FILE"] = str(model_file)
        cmd = [
            sys.executable, "-m", "pytest", "tests", "-q", "--no-header", "-p", "no:cacheprovider",
            "-p", "_hypothesis_pytestplugin", "-p", "no:unraisableexception",
            "-o", "addopts=", "--rootdir", str(src), f"--hypothesis-seed={seed}",
        ] + (["--maxfail=1"] if first_failure else [])  # fmt: skip
        from nb2prod.builder.kernel import with_parent

        cmd = with_parent(cmd, os.getpid())  # a killed build takes its tests with it
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
        data = json.loads(results_file.read_text()) if results_file.exists() else {"results": []}
    skipped = (manifest.get("properties") or {}).get("skipped") or {}
    return TestRun(
        src,
        seed,
        data["results"],
        time.monotonic() - started,
        dict(skipped),
        stopped=first_failure,
        returncode=proc.returncode,
        output=(proc.stdout + proc.stderr)[-20000:],
    )


def failure(
    run: TestRun,
    *,
    notebook: str = "",
    model_file: Path | None = None,
    replay: str | None = None,
    kept: Path | None = None,
) -> PropertyFailed:
    """The error for a failed run, built once, with the paths where its files now are.

    Args:
        run: a run that is not ``ok``.
        notebook: the notebook's name, for the message.
        model_file: the model the tests used, for the reproduce command.
        replay: the command that reruns the tests (``{seed}`` is filled in), when ``run.src``
            is a temporary copy.
        kept: where a failed build was kept; the message says how to rerun it.
    """
    manifest = _manifest(run.src)
    notebook = notebook or manifest.get("notebook") or str(run.src)
    unloaded = next((r for r in run.failed if str(r.get("error", "")).startswith(_UNLOADED)), None)
    if unloaded is not None:  # no property or parity failed: the tests had no model to test
        reason = str(unloaded["error"]).removeprefix(_UNLOADED).strip().splitlines()[0]
        return PropertyFailed(
            f"{notebook}: the generated tests could not load the trained model, so the tests "
            f"that need it did not run: {reason.rstrip('.')}.",
            seed=run.seed,
            failed=[r["test"].removeprefix("test_") for r in run.failed],
            kept=str(kept) if kept is not None else None,
        )
    if not run.failed:  # pytest itself failed: no tests, a broken conftest, ...
        return PropertyFailed(
            f"{notebook}: the generated tests could not run (pytest exit {run.returncode}); "
            "pytest's output is above.",
            report=run.output,
            seed=run.seed,
        )
    run.replay = replay.format(seed=run.seed) if replay else None
    first, rest = run.failed[0], run.failed[1:]
    also = f"; also failed: {', '.join(words(r['test']) for r in rest)}" if rest else ""
    entry = _entry(manifest, notebook)
    what = (
        f"property `{words(first['test'])}` failed for the entry point {entry}"
        if first["test"].removeprefix("test_") in BY_KEY
        else f"generated test {first['test']} failed ({first['doc']})"
    )
    rerun = ""
    if kept is not None:
        rerun = f" Rerun: nb2prod test {kept} --seed {run.seed}."
    return PropertyFailed(
        f"{notebook}: {what}{also}. The falsifying frame and how to reproduce it are above "
        f"(seed {run.seed}).{rerun}",
        report=failure_report(run, entry=entry, model_file=model_file),
        property=first["test"].removeprefix("test_"),
        failed=[r["test"].removeprefix("test_") for r in run.failed],
        seed=run.seed,
        kept=str(kept) if kept is not None else None,
    )


def run_target(target: str | Path, *, seed: int | None = None) -> TestRun:
    """``nb2prod test``: run the generated tests of any bento :func:`open_bento` accepts.

    Args:
        target: a build directory (``bentos/<name>-<version>``) or its ``src/``, a ``.bento``
            file, or a bento tag.
        seed: Hypothesis's seed; random when not given.

    Raises:
        BentoNotFound: the target names no bento made by nb2prod.
        PropertyFailed: a generated test failed.
    """
    with open_bento(target, writable=True) as bento:
        run = run_tests(bento.src, bento.model_file, seed=seed, first_failure=False)
        if run.ok:
            return run
        replay = None if bento.kind == "build" else f"nb2prod test {target} --seed {{seed}}"
        raise failure(run, model_file=bento.model_file, replay=replay)
