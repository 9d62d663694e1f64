"""The BentoML store: save the model, `bentoml build` the bento, export it, undo on failure."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from nb2prod.errors import BentoError

log = logging.getLogger(__name__)


def _quiet_bentoml() -> None:
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def _store_env() -> dict[str, str]:
    """The environment for a ``bentoml`` subprocess, pointed at this process's store.

    BentoML reads ``BENTOML_HOME`` once, on first use; the model was saved there. A process
    whose environment changed since (a Jupyter server, a test) would otherwise build against
    another store and not find the model.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    return {**os.environ, "BENTOML_HOME": str(BentoMLContainer.bentoml_home.get())}


def exists(kind: str, tag: str) -> bool:
    """Whether ``tag`` is in the local model (``kind="model"``) or bento store."""
    import bentoml
    from bentoml.exceptions import NotFound

    getter = bentoml.models.get if kind == "model" else bentoml.get
    try:
        getter(tag)
    except NotFound:
        return False
    return True


def _plain(value: Any) -> Any:
    """BentoML model metadata takes only basic types, and no None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    return value


def save_model(
    tag: str, model_file: Path, labels: dict[str, str], metadata: dict[str, Any]
) -> bool:
    """Save the pickled model under ``tag``; return False when it was already there."""
    _quiet_bentoml()
    import bentoml

    if exists("model", tag):
        log.info("model %s already in the store", tag)
        return False
    with open(model_file, "rb") as fh:
        model = pickle.load(fh)
    module = type(model).__module__
    try:
        with (
            bentoml.models.create(
                tag, labels=labels, metadata=_plain(metadata), module=module
            ) as ref,
            open(ref.path_of("model.pkl"), "wb") as fh,
        ):
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise BentoError(f"Could not save model {tag} to the BentoML store: {exc}.") from exc
    log.info("saved model %s", tag)
    return True


def build_bento(src: Path, version: str) -> str:
    """``bentoml build`` the generated ``src`` directory at ``version``; return the tag.

    It runs in a fresh interpreter: building imports the bento's ``service`` module, and a
    second build in one process (the Jupyter server's build jobs, a test session) would find
    the first bento's ``service`` in ``sys.modules``.
    """
    _quiet_bentoml()
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "build",
        str(src),
        "-f",
        str(src / "bentofile.yaml"),
        "--version",
        version,
        "--output",
        "tag",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_store_env())
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BentoError(
            f"bentoml build failed for {src}: {detail[-1] if detail else 'no output'}.",
            log=(proc.stderr or proc.stdout)[-5000:],
        )
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    log.info("built bento %s", tag)
    return tag


def export(tag: str, target: Path) -> Path:
    """Export bento ``tag`` to the ``.bento`` file ``target`` (written whole, then moved)."""
    import bentoml

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        bentoml.bentos.export_bento(tag, str(partial.resolve()), output_format="bento")
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise BentoError(f"Could not export bento {tag} to {target}: {exc}.") from exc
    written = partial if partial.exists() else Path(f"{partial.resolve()}.bento")
    os.replace(written, target)
    return target


def delete(kind: str, tag: str) -> None:
    """Remove ``tag`` from the store; used to undo a failed build. Never raises."""
    import bentoml

    try:
        (bentoml.models.delete if kind == "model" else bentoml.delete)(tag)
        log.info("removed %s %s after a failed build", kind, tag)
    except Exception:  # undo is best effort, the original error matters more
        log.warning("could not remove %s %s", kind, tag, exc_info=True)
