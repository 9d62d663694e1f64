"""A build's lifetime: work dirs stamped and swept, an out dir that cannot be written, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nb2prod.builder import lifetime
from nb2prod.errors import BentoError


def dead_process_stamp() -> dict:
    """The stamp a build would have written, of a process that has ended since."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        for _ in range(100):
            started = lifetime._start_time(proc.pid)
            if started:
                break
            time.sleep(0.01)
        stamp = {**lifetime.owner(), "pid": proc.pid, "started": started}
    finally:
        proc.kill()
        proc.wait()
    return stamp


def work_dir(out: Path, name: str, stamp: dict | None) -> Path:
    path = out / name
    (path / "train").mkdir(parents=True)
    if stamp is not None:
        (path / lifetime.OWNER).write_text(json.dumps(stamp))
    return path


def test_sweep_removes_the_work_dirs_of_dead_builds_only(tmp_path: Path) -> None:
    # Given the work dirs of a live build, of a killed one, of one whose pid now belongs to
    # another process, and folders that are no build's
    live = lifetime.make_work_dir(tmp_path, "churn")
    dead = work_dir(tmp_path, ".churn-dead0000", dead_process_stamp())
    reused = work_dir(tmp_path, ".churn-reused00", {**lifetime.owner(), "started": "1"})
    elsewhere = work_dir(tmp_path, ".churn-remote00", {**dead_process_stamp(), "host": "other"})
    unstamped = work_dir(tmp_path, ".churn-nostamp0", None)
    (tmp_path / ".nb2prod-cache").mkdir()
    (tmp_path / "churn-abc123").mkdir()
    # When a build sweeps the out dir
    removed = lifetime.sweep(tmp_path)
    # Then only the dead builds' dirs are gone
    assert sorted(removed) == sorted([dead, reused])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, elsewhere.name, unstamped.name, ".nb2prod-cache", "churn-abc123"]
    )


def test_the_work_dir_names_its_owner(tmp_path: Path) -> None:
    work = lifetime.make_work_dir(tmp_path / "bentos", "churn")
    assert work.name.startswith(".churn-") and work.parent == tmp_path / "bentos"
    stamp = json.loads((work / lifetime.OWNER).read_text())
    assert stamp["pid"] == os.getpid() and lifetime.alive(stamp)
    lifetime.finish(work)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("where", ["file", "sysfs"])
def test_an_out_dir_that_cannot_be_written_is_one_sentence(tmp_path: Path, where: str) -> None:
    if where == "file":  # --out under a plain file
        (tmp_path / "file").write_text("x")
        out, reason = tmp_path / "file" / "bentos", "Not a directory"
    else:  # a read-only file system, even for root
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs")
        out, reason = Path("/sys/kernel/nb2prod-bentos"), "(Operation not permitted|Permission)"
    with pytest.raises(BentoError) as info:
        lifetime.make_work_dir(out, "churn")
    message = str(info.value)
    assert message.startswith(f"Cannot write the build output to {out}: ")
    assert len(message.splitlines()) == 1 and message.endswith("--out).")
    assert re.search(reason, message), message


def test_sigterm_unwinds_a_build_as_ctrl_c_does(tmp_path: Path) -> None:
    # Given a process in the middle of a build, with cleanup in a finally block
    code = (
        "import sys, time\n"
        "from nb2prod.builder import lifetime\n"
        "with lifetime.stopping_cleanly():\n"
        "    try:\n"
        "        print('working', flush=True)\n"
        "        time.sleep(30)\n"
        "    finally:\n"
        f"        open({str(tmp_path / 'cleaned')!r}, 'w').close()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with proc.stdout:
        assert proc.stdout.readline() == "working\n"
        # When it is sent SIGTERM (systemd, docker stop, a CI timeout)
        proc.send_signal(signal.SIGTERM)
        # Then it cleans up and exits with 128 + 15
        assert proc.wait(10) == 143
    assert (tmp_path / "cleaned").exists()


def test_a_work_dir_is_removed_while_a_thread_still_writes_into_it(tmp_path: Path) -> None:
    """nbclient's kernel thread can write into the work dir after a signal stopped the build;
    one rmtree then races it and leaves the folder behind."""
    import threading
    import time

    from nb2prod.builder.lifetime import remove

    work = tmp_path / ".churn-abc123"
    (work / "train").mkdir(parents=True)
    stop = time.monotonic() + 0.3

    def writer() -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                (work / "train" / f"cell-{n}.json").write_text("{}")
            except OSError:  # the folder went: as the kernel thread finds it
                return
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    remove(work)
    thread.join()
    assert not work.exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_removing_a_work_dir_kills_the_children_started_on_it_and_no_others(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    # Given a child writing into the work dir (as a kernel still starting up does) and one
    # that has nothing to do with it (as a Jupyter server's own kernel)
    work, other = tmp_path / ".nb-abcdefgh", tmp_path / "elsewhere"
    (work / "train").mkdir(parents=True)
    other.mkdir()
    writer = (
        "import os, sys, time\n"
        "time.sleep(0.5)\n"
        "os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)\n"
        "open(sys.argv[1], 'w').write('{}')\n"
        "time.sleep(60)\n"
    )
    late = subprocess.Popen([sys.executable, "-c", writer, str(work / "train" / "k.json")])
    bystander = subprocess.Popen([sys.executable, "-c", writer, str(other / "k.json")])
    try:
        # When the work dir is removed
        lifetime.remove(work)
        # Then the child started on it is dead before it could make the folder again, and
        # the other one runs on
        assert late.wait(5) == -9
        time.sleep(1.0)
        assert not work.exists()
        assert bystander.poll() is None and (other / "k.json").exists()
    finally:
        for proc in (late, bystander):
            proc.kill()
            proc.wait()
