"""Run by ``bento.store.stage`` in a fresh interpreter: model, bento and .bento into a staging store.

``python -m nb2prod.bento.staging`` reads a JSON request on stdin and works in the store its
``BENTOML_HOME`` names, a folder inside the build's work dir: nothing reaches the real store
here, so a build killed at any point leaves nothing there. The last stdout line is a JSON
answer: ``{"tag": ...}``, or ``{"error": "one sentence"}`` with exit code 1.

It dies with its parent (``PR_SET_PDEATHSIG`` on Linux), so a killed build leaves no
``bentoml build`` running on. It imports nothing of nb2prod.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Be killed when ``parent`` (the build) dies, or exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _save_model(request: dict[str, Any]) -> None:
    import bentoml

    with bentoml.models.create(
        request["model_tag"],
        labels=request["labels"],
        metadata=request["metadata"],
        module=request["model_module"],
    ) as ref:
        # the export cell pickled it with the highest protocol, as the service reads it
        shutil.copyfile(request["model_file"], ref.path_of("model.pkl"))
        for name in ("model.onnx", "model.treelite"):  # only when it serves compiled
            compiled = os.path.join(os.path.dirname(request["model_file"]), name)
            if os.path.isfile(compiled):
                shutil.copyfile(compiled, ref.path_of(name))


def _build(request: dict[str, Any]) -> str:
    import bentoml

    src = request["src"]
    bento = bentoml.bentos.build_bentofile(
        os.path.join(src, "bentofile.yaml"), version=request["version"], build_ctx=src
    )
    return str(bento.tag)


def _export(tag: str, target: str) -> None:
    import bentoml

    written = bentoml.bentos.export_bento(tag, target, output_format="bento")
    if Path(written) != Path(target):  # BentoML appends .bento to some names
        os.replace(written, target)


def run(request: dict[str, Any]) -> dict[str, str]:
    """Save the model, build the bento and export it; the answer for stdout."""
    step = f"Could not save model {request['model_tag']}"
    try:
        _save_model(request)
        step = f"bentoml build failed for {request['src']}"
        tag = _build(request)
        step = f"Could not export bento {tag} to {request['bento_file']}"
        _export(tag, request["bento_file"])
    except Exception as exc:  # reported to the parent as one sentence, traceback on stderr
        logging.getLogger("nb2prod.bento.staging").exception("%s", step)
        detail = str(exc).strip().splitlines()
        reason = detail[-1] if detail else type(exc).__name__
        return {"error": f"{step}: {reason.rstrip('.')}."}
    return {"tag": tag}


def main() -> int:
    request = json.loads(sys.stdin.read())
    die_with_parent(request["parent"])
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    answer = run(request)
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    sys.exit(main())
