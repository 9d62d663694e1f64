"""The training kernel's launch: it dies with its build (no kernel here: a stand-in process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nb2prod.builder.kernel import manager_class, with_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_process_started_through_the_wrapper_dies_with_its_parent() -> None:
    # Given a parent (the build) that starts a long child through the wrapper, as the kernel
    # manager starts the kernel
    code = (
        "import os, subprocess, sys, json\n"
        "from nb2prod.builder.kernel import with_parent\n"
        "child = subprocess.Popen(with_parent(['sleep', '60'], os.getpid()))\n"
        "print(json.dumps(child.pid), flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    child = json.loads(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 10
        while "sleep" not in Path(f"/proc/{child}/cmdline").read_bytes().decode():
            assert time.monotonic() < deadline, "the wrapper did not exec its command"
            time.sleep(0.01)
        assert running(child)
        # When the parent is killed outright (no cleanup can run)
        parent.kill()
        parent.wait()
        # Then the child is killed with it, not left to notice later
        deadline = time.monotonic() + 2.0
        while running(child):
            assert time.monotonic() < deadline, "the child outlived its parent"
            time.sleep(0.01)
    finally:
        parent.stdin.close()
        parent.stdout.close()
        if running(child):
            os.kill(child, 9)


def test_a_child_whose_parent_is_already_gone_does_not_start() -> None:
    # the parent named in the argv is not the real one: it died before prctl took effect
    cmd = with_parent(["echo", "started"], os.getpid() + 1_000_000)
    proc = subprocess.run(cmd, check=False, text=True, capture_output=True, timeout=10)
    assert proc.returncode == 1 and proc.stdout == ""


def test_the_connection_file_is_in_the_training_dir(tmp_path: Path) -> None:
    km = manager_class(tmp_path / ".kernel")(kernel_name="python3")
    assert Path(km.connection_file).parent == tmp_path / ".kernel"
    assert (tmp_path / ".kernel").stat().st_mode & 0o777 == 0o700
    cmd = km.format_kernel_cmd()
    assert cmd[:3] == [sys.executable, "-I", "-S"] and "ipykernel_launcher" in " ".join(cmd)
    assert km.connection_file in cmd
