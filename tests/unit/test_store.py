"""The store's write side: builds of one name take turns, and entries arrive whole."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from nb2prod.bento import store


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def stage_entry(staging: Path, kind: str, tag: str) -> Path:
    """A finished entry in a staging store, as BentoML leaves one."""
    folder, marker = {"model": ("models", "model.yaml"), "bento": ("bentos", "bento.yaml")}[kind]
    name, version = tag.split(":")
    entry = staging / folder / name / version
    (entry / "src").mkdir(parents=True)
    (entry / "src" / "service.py").write_text("# the service\n")
    (entry / marker).write_text(f"name: {name}\nversion: {version}\n")
    return entry


def test_a_build_waits_while_another_process_holds_the_name_until_that_one_dies(caplog) -> None:
    # Given another process holding the store's lock for a name (a build in progress)
    name = unique("lock")
    code = (
        "import sys\nfrom nb2prod.bento import store\n"
        f"with store.lock({name!r}):\n    print('held', flush=True)\n    sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        # When this process asks for the same name
        got = threading.Event()

        def take() -> None:
            with store.lock(name):
                got.set()

        caplog.set_level(logging.WARNING, logger="nb2prod")
        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        # Then it waits, and says for whom
        assert not got.wait(0.5)
        assert f"another build of {name} is running (pid {holder.pid}); waiting" in caplog.text
        # And a holder that is killed (SIGKILL: no cleanup at all) lets it in
        holder.send_signal(signal.SIGKILL)
        assert got.wait(10)
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


def test_two_threads_of_one_process_take_turns() -> None:
    # Given a Jupyter server's two build jobs for one bento name (two notebook paths)
    name, events = unique("threads"), []
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with store.lock(name):
            inside.set()
            release.wait(5)
            events.append("first leaves")

    def second() -> None:
        inside.wait(5)
        with store.lock(name):
            events.append("second enters")

    threads = [threading.Thread(target=f, daemon=True) for f in (first, second)]
    for thread in threads:
        thread.start()
    # When the first lets go only after a while
    inside.wait(5)
    threads[1].join(0.3)
    release.set()
    for thread in threads:
        thread.join(5)
    # Then the second entered after it, not beside it
    assert events == ["first leaves", "second enters"]


def test_commit_moves_whole_entries_in_and_points_latest_at_them(tmp_path: Path) -> None:
    # Given a build's staged model and bento
    name = unique("commit")
    model, bento = f"{name}-model:v1", f"{name}:v1"
    staging = tmp_path / "staging"
    stage_entry(staging, "model", model)
    stage_entry(staging, "bento", bento)
    # When they are committed
    made = store.commit(staging, model, bento)
    # Then both are in the store, whole, `latest` names them, and the staging store is empty
    assert made == [("model", model), ("bento", bento)]
    assert store.exists("model", model) and store.exists("bento", bento)
    root = store.home()
    assert (root / "bentos" / name / "latest").read_text() == "v1"
    assert (root / "models" / f"{name}-model" / "latest").read_text() == "v1"
    assert (root / "bentos" / name / "v1" / "src" / "service.py").is_file()
    assert sorted(p.name for p in (root / "bentos" / name).iterdir()) == ["latest", "v1"]
    assert not (staging / "bentos" / name / "v1").exists()


def test_commit_keeps_a_complete_entry_and_replaces_an_interrupted_one(tmp_path: Path) -> None:
    # Given the model already complete in the store (an earlier build of the same version),
    # and a bento folder without its bento.yaml (a copy that was killed half way)
    name = unique("again")
    model, bento = f"{name}-model:v1", f"{name}:v1"
    root = store.home()
    stage_entry(root, "model", model)
    half = root / "bentos" / name / "v1"
    (half / "src").mkdir(parents=True)
    staging = tmp_path / "staging"
    stage_entry(staging, "model", model)
    stage_entry(staging, "bento", bento)
    # When a later build commits the same version
    made = store.commit(staging, model, bento)
    # Then only the bento was added, and it is whole
    assert made == [("bento", bento)]
    assert store.exists("bento", bento)
    assert (half / "src" / "service.py").is_file()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system")
def test_commit_from_another_file_system_goes_through_a_copy_inside_the_store() -> None:
    root = store.home()
    if os.stat("/dev/shm").st_dev == os.stat(root).st_dev:
        pytest.skip("/dev/shm is on the store's file system")
    name = unique("exdev")
    staging = Path(os.path.join("/dev/shm", unique("nb2prod-staging-")))
    try:
        stage_entry(staging, "model", f"{name}-model:v1")
        stage_entry(staging, "bento", f"{name}:v1")
        assert len(store.commit(staging, f"{name}-model:v1", f"{name}:v1")) == 2
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    assert store.exists("bento", f"{name}:v1") and store.exists("model", f"{name}-model:v1")
    assert not list((root / store.INCOMING).glob(f"*{name}*"))
