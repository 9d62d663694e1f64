"""The training kernel dies with its build, and its connection file stays in the work dir.

papermill runs the notebook through nbclient, which starts the kernel with the
``kernel_manager_class`` it is given. Ours changes two things and nothing else:

- the connection file (it holds the HMAC key that signs every message to the kernel) is
  written in the training directory, not in ``/tmp``, so it goes with the work dir;
- on Linux the kernel is started through a two-line ``exec`` wrapper that sets
  ``PR_SET_PDEATHSIG``: when the build is killed (even with SIGKILL) the kernel is killed at
  once, instead of running on until ipykernel's parent poller notices a second later, or
  longer when a cell holds the GIL.

Imported only when training starts (jupyter_client is not light).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from jupyter_client import AsyncKernelManager

# argv: the build's pid, then the kernel's own command. The pid check closes the race of a
# build that died before prctl ran. The signal survives the exec.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def with_parent(cmd: list[str], parent: int) -> list[str]:
    """``cmd`` wrapped so that its process is killed when ``parent`` dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return cmd
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(parent), *cmd]


def manager_class(directory: Path) -> type[AsyncKernelManager]:
    """A kernel manager class whose connection file goes in ``directory`` (made here, 0700).

    jupyter_client sets the sticky bit on the folder of a connection file: give it one of
    its own, and remove it after the run.
    """

    class BuildKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            name = f".kernel-{uuid.uuid4().hex[:12]}.json"
            self.connection_file = str(directory.resolve() / name)

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return with_parent(super().format_kernel_cmd(extra_arguments), os.getpid())

    return BuildKernelManager
