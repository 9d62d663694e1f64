"""The BentoML store: stage a build's model and bento aside, then commit them whole, under a lock.

A build never writes into the store while it runs. :func:`stage` saves the model, runs
``bentoml build`` and exports the ``.bento`` inside a staging store in the build's work dir
(``nb2prod.bento.staging``, in a fresh interpreter); :func:`commit` then moves the finished
entries into the store with one ``rename`` each, model first, and ``latest`` last. A build
killed at any point leaves either nothing in the store or complete entries.

:func:`lock` serialises the builds of one bento name across processes and threads
(``flock`` on ``<BENTOML_HOME>/.nb2prod-locks/<name>.lock``), so the second of two builds of
the same notebook waits, then reuses what the first made.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nb2prod.errors import BentoError

log = logging.getLogger(__name__)
LOCKS = ".nb2prod-locks"
INCOMING = ".nb2prod-incoming"  # copies on their way in, when the work dir is on another disk
_KINDS = {"model": ("models", "model.yaml"), "bento": ("bentos", "bento.yaml")}


def home() -> Path:
    """The BentoML home this process uses.

    BentoML reads ``BENTOML_HOME`` once, on first use. A process whose environment changed
    since (a Jupyter server, a test) keeps using that first store, and so must every write.
    Until bentoml is imported, the variable is read as BentoML reads it, which spares a
    cache hit the half second that importing bentoml's configuration takes.
    """
    if "bentoml" not in sys.modules:
        raw = os.environ.get("BENTOML_HOME") or os.path.join(os.path.expanduser("~"), "bentoml")
        return Path(os.path.expandvars(os.path.expanduser(raw)))
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get())


def _entry(kind: str, tag: str, root: Path | None = None) -> Path:
    name, _, version = tag.partition(":")
    return (root or home()) / _KINDS[kind][0] / name / version


def exists(kind: str, tag: str) -> bool:
    """Whether ``tag`` is complete in the local model (``kind="model"``) or bento store."""
    return (_entry(kind, tag) / _KINDS[kind][1]).is_file()


@contextmanager
def lock(name: str) -> Iterator[None]:
    """Hold the store's lock for bento ``name``; wait while another build holds it.

    Raises:
        BentoError: the lock file cannot be made (the BentoML home is not writable).
    """
    import fcntl

    folder = home() / LOCKS
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise BentoError(
            f"Cannot lock the BentoML store for {name} in {folder}: {exc.strerror or exc}.",
            path=str(folder),
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "another process"
            log.warning("another build of %s is running (%s); waiting for it", name, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock, as the end of the process does


def stage(
    staging: Path,
    src: Path,
    version: str,
    model: dict[str, Any],
    bento_file: Path,
) -> str:
    """Save the model, ``bentoml build`` ``src`` and export ``bento_file``, all in ``staging``.

    ``model`` holds ``tag``, ``file``, ``module``, ``labels`` and ``metadata``. It runs in a
    fresh interpreter: building imports the bento's ``service`` module, and a second build in
    one process (the Jupyter server's build jobs, a test session) would find the first
    bento's ``service`` in ``sys.modules``.

    Raises:
        BentoError: a step failed; the message names it, ``log`` holds BentoML's output.
    """
    request = {
        "parent": os.getpid(),
        "src": str(src.resolve()),
        "version": version,
        "model_tag": model["tag"],
        "model_file": str(Path(model["file"]).resolve()),
        "model_module": model["module"],
        "labels": model["labels"],
        "metadata": _plain(model["metadata"]),
        "bento_file": str(bento_file.resolve()),  # BentoML resolves relative paths wrongly
    }
    env = {**os.environ, "BENTOML_HOME": str(staging.resolve()), "BENTOML_DO_NOT_TRACK": "true"}
    cmd = [sys.executable, "-m", "nb2prod.bento.staging"]
    proc = subprocess.run(
        cmd, input=json.dumps(request), capture_output=True, text=True, check=False, env=env
    )
    lines = proc.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if proc.returncode != 0 or "tag" not in answer:
        output = (proc.stderr or proc.stdout).strip()
        reason = answer.get("error") or (
            f"Could not build the bento from {src}: "
            f"{output.splitlines()[-1] if output else f'exit code {proc.returncode}'}."
        )
        raise BentoError(reason, log=output[-5000:])
    log.info("built bento %s (staged)", answer["tag"])
    return answer["tag"]


def _plain(value: Any) -> Any:
    """BentoML model metadata takes only basic types, and no None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    return value


def commit(staging: Path, model_tag: str, bento_tag: str) -> list[tuple[str, str]]:
    """Move the staged model and bento into the store; the entries this call added.

    An entry already complete in the store is kept (a version names its content); one
    without its yaml (a copy that was interrupted) is replaced. Call it holding
    :func:`lock` for the bento's name.

    Raises:
        BentoError: the store cannot be written.
    """
    root = home()
    made: list[tuple[str, str]] = []
    for kind, tag in (("model", model_tag), ("bento", bento_tag)):
        dest = _entry(kind, tag, root)
        try:
            if (dest / _KINDS[kind][1]).is_file():
                log.info("%s %s already in the store", kind, tag)
                continue
            if dest.exists():
                shutil.rmtree(dest)
            _move_in(_entry(kind, tag, staging), dest, root)
            _write_latest(dest.parent, dest.name)
        except OSError as exc:
            raise BentoError(
                f"Could not write {kind} {tag} to the BentoML store at {root}: "
                f"{exc.strerror or exc}.",
                path=str(dest),
            ) from exc
        made.append((kind, tag))
        log.info("committed %s %s", kind, tag)
    return made


def _move_in(src: Path, dest: Path, root: Path) -> None:
    """``src`` to ``dest`` in one rename, through a copy inside the store when on another disk."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    incoming = root / INCOMING
    incoming.mkdir(exist_ok=True)
    prefix = f"{dest.parent.parent.name}-{dest.parent.name}-"
    for stale in incoming.glob(f"{prefix}*"):  # a killed commit's; the lock says none is live
        shutil.rmtree(stale, ignore_errors=True)
    copy = Path(tempfile.mkdtemp(prefix=prefix, dir=incoming))
    try:
        shutil.copytree(src, copy, dirs_exist_ok=True, symlinks=True)
        os.rename(copy, dest)
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise


def _write_latest(folder: Path, version: str) -> None:
    # BentoML lists only the folders beside ``latest``: a partial file there is never a version
    fd, partial = tempfile.mkstemp(prefix=".latest-", dir=folder)
    os.fchmod(fd, 0o644)  # as BentoML writes it
    with os.fdopen(fd, "w") as fh:
        fh.write(version)
    os.replace(partial, folder / "latest")


def delete(kind: str, tag: str) -> None:
    """Remove ``tag`` from the store; used to undo a failed build. Never raises."""
    import bentoml

    try:
        (bentoml.models.delete if kind == "model" else bentoml.delete)(tag)
        log.info("removed %s %s after a failed build", kind, tag)
    except Exception:  # undo is best effort, the original error matters more
        log.warning("could not remove %s %s", kind, tag, exc_info=True)
