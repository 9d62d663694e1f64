"""``nb2prod build`` killed (SIGKILL) at each stage: nothing in the store, no kernel left.

Real processes: the CLI builds a tiny notebook into the session's temporary store, and is
killed when it reaches a stage. The four kills run at once (one notebook name each, so they
do not wait for each other's store lock). Then the last one is built three times at once:
by the CLI, and by two Jupyter build jobs for two paths of the notebook (``k_bento.ipynb``
and ``sub/k_bento.ipynb``), which the jobs' per-path lock does not keep apart.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nb2prod.builder import pipeline
from nb2prod.lab.jobs import TERMINAL, JobRegistry
from tests.support import BIN, CHECK

pytestmark = pytest.mark.e2e
STAGE_LINE = re.compile(r"\bstage (check|train|lift|test|bento)\b")


@dataclass
class Build:
    """One ``nb2prod build`` subprocess, its stderr read as it comes."""

    proc: subprocess.Popen
    stages: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def read(self) -> None:
        with self.proc.stderr:
            for line in self.proc.stderr:
                self.stderr.append(line)
                if found := STAGE_LINE.search(line):
                    self.stages.append(found.group(1))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Build]]:
    """Start ``nb2prod build`` subprocesses; at the end, none of them or theirs is left."""
    started: list[Build] = []

    def start(notebook: Path, out: Path, *extra: str, verbose: bool = True) -> Build:
        # the session's BENTOML_HOME; wide enough that Rich does not wrap a log line
        env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "COLUMNS": "250"}
        cmd = [str(BIN / "nb2prod"), *(["-v"] if verbose else []), "build", str(notebook)]
        proc = subprocess.Popen(
            [*cmd, "--out", str(out), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        started.append(Build(proc))
        threading.Thread(target=started[-1].read, daemon=True).start()
        return started[-1]

    yield start
    for build in started:
        build.proc.kill()
        build.proc.wait()
        build.proc.stdout.close()
    # the generated tests of the build killed in its test stage outlive it (gate/run.py)
    for pid, (_, cmd) in processes().items():
        if str(tmp_path) in cmd:
            os.kill(pid, signal.SIGKILL)


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if stat[0] != "Z":
                found[int(entry.name)] = (int(stat[1]), cmdline)
    return found


def kernels_of(pid: int) -> dict[int, str]:
    return {p: cmd for p, (ppid, cmd) in processes().items() if ppid == pid and "ipykernel" in cmd}


def until(what: str, condition, build: Build, timeout: float = 150.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert build.proc.poll() is None, f"the build ended before {what}: {''.join(build.stderr)}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)
    return found


def work_dirs(out: Path, name: str) -> list[Path]:
    return sorted(out.glob(f".{name}-*"))


def bento_built(out: Path, home: Path) -> list[Path]:
    """k_bento's bento.yaml: staged in its work dir, or (before the fix) in the store itself."""
    staged = out.glob(".k_bento-*/.store/bentos/k_bento/*/bento.yaml")
    return [*staged, *home.glob("bentos/k_bento/*/bento.yaml")]


def in_store(home: Path, name: str) -> list[str]:
    """What the store holds of ``name``: bento and model versions, ``latest`` files."""
    held = []
    for folder in (home / "bentos" / name, home / "models" / f"{name}-model"):
        if folder.is_dir():
            held += [f"{folder.parent.name}/{folder.name}/{p.name}" for p in folder.iterdir()]
    return sorted(held)


def test_builds_killed_at_each_stage_leave_nothing_that_looks_valid(tmp_path: Path, start) -> None:
    home, out = Path(os.environ["BENTOML_HOME"]), tmp_path / "bentos"
    stages = ("train", "lift", "test", "bento")
    builds = {}
    for stage in stages:  # one name per stage: the four builds run at once
        notebook = tmp_path / f"k_{stage}.ipynb"
        shutil.copy(CHECK / "clean.ipynb", notebook)
        builds[stage] = start(notebook, out, *([] if stage == "test" else ["--no-gate"]))

    # When each build reaches its stage, it is killed
    killed_kernels = {}
    for stage in stages:
        build = builds[stage]
        if stage == "train":  # with its kernel running a cell
            killed_kernels = until("kernel", lambda b=build: kernels_of(b.proc.pid), build)
        elif stage == "bento":  # right after `bentoml build` (the model is saved by then)
            until("bento built", lambda: bento_built(out, home), build)
        else:
            until(f"stage {stage}", lambda b=build, s=stage: s in b.stages, build)
        build.proc.send_signal(signal.SIGKILL)
        build.proc.wait(10)

    # Then the kernel died with its build, and its key was in the work dir, not in /tmp
    (kernel, cmdline), *_ = killed_kernels.items()
    connection = Path(re.search(r" -f (\S+)", cmdline).group(1))
    assert connection.is_relative_to(work_dirs(out, "k_train")[0]), connection
    deadline = time.monotonic() + 1.0  # loose: the kernel is killed with its parent
    while kernel in processes():
        assert time.monotonic() < deadline, f"kernel {kernel} outlived its build"
        time.sleep(0.02)
    assert not [cmd for _, cmd in processes().values() if "ipykernel" in cmd and str(out) in cmd]
    # And nothing of any killed build is in the store: no model, no bento, no `latest`
    for stage in stages:
        assert in_store(home, f"k_{stage}") == [], stage
        assert len(work_dirs(out, f"k_{stage}")) == 1, stage  # until the next build
    (killed,) = work_dirs(out, "k_bento")
    version = json.loads((killed / "src" / "nb2prod.json").read_text())["version"]

    # When the last notebook is then built three times at once: by the CLI, and by two
    # Jupyter build jobs for two paths of it
    (tmp_path / "sub").mkdir()
    shutil.copy(tmp_path / "k_bento.ipynb", tmp_path / "sub" / "k_bento.ipynb")
    cli = start(tmp_path / "k_bento.ipynb", out, "--no-gate", verbose=False)
    registry = JobRegistry(build=functools.partial(pipeline.build, gate=False))
    try:
        jobs = [
            registry.submit(tmp_path / path, path, {}, out)
            for path in ("k_bento.ipynb", "sub/k_bento.ipynb")
        ]
        cli.proc.wait(300)
        deadline = time.monotonic() + 300
        while any(job.state not in TERMINAL for job in jobs):
            assert time.monotonic() < deadline, [job.state for job in jobs]
            time.sleep(0.1)
    finally:
        registry.close()
    # Then all three succeed with the version the killed build would have had: they took
    # turns at the store's lock, and the later ones reused the first one's bento
    assert cli.proc.returncode == 0, "".join(cli.stderr)
    assert f"k_bento:{version}" in cli.proc.stdout.read()
    for job in jobs:
        assert job.state == "succeeded", job.error
        assert job.result["tag"] == f"k_bento:{version}"
    logs = ["".join(cli.stderr), *("\n".join(job.log) for job in jobs)]
    assert sum("waiting for it" in text for text in logs) >= 2
    assert in_store(home, "k_bento") == [
        f"bentos/k_bento/{version}",
        "bentos/k_bento/latest",
        f"models/k_bento-model/{version}",
        "models/k_bento-model/latest",
    ]
    assert (home / "bentos" / "k_bento" / "latest").read_text() == version
    # And the work dirs of all four killed builds are gone; nothing else is left
    assert sorted(p.name for p in out.iterdir()) == [
        ".nb2prod-cache",
        f"k_bento-{version}",
        f"k_bento-{version}.bento",
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_build_stopped_during_training_stops_its_kernel_and_cleans_up(
    tmp_path: Path, start, sig: signal.Signals
) -> None:
    # Given a build whose kernel is running the notebook
    out, notebook = tmp_path / "bentos", tmp_path / f"k_{sig.name.lower()}.ipynb"
    shutil.copy(CHECK / "clean.ipynb", notebook)
    build = start(notebook, out, "--no-gate")
    kernels = until("kernel", lambda: kernels_of(build.proc.pid), build)
    # When it is stopped politely (docker stop, systemd, Ctrl-C)
    build.proc.send_signal(sig)
    code = build.proc.wait(30)
    # Then it exits as such a signal says, with its kernel shut down and no work dir left
    assert code == 128 + sig, "".join(build.stderr)
    assert not set(kernels) & set(processes())
    assert not out.exists() or list(out.iterdir()) == []
    assert in_store(Path(os.environ["BENTOML_HOME"]), notebook.stem) == []
