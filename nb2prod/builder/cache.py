"""The build cache: an unchanged notebook is found before training, and its bento reused.

The key is :func:`nb2prod.builder.identity.cache_key`, known before training. The entry
also keeps the sha256 of every file the training run read (:mod:`nb2prod.builder.reads`):
a lookup hashes them again, and any change is a miss, logged as ``data changed: <file>``.
A notebook whose run read from where nothing can hash (the network, a database) gets an
entry that says why and never hits. A hit is used only when the build directory, the
``.bento`` file and the store's bento and model are all still there and agree on the
version.
"""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento import store
from nb2prod.builder import reads

if TYPE_CHECKING:
    from nb2prod.builder.pipeline import BuildResult
    from nb2prod.builder.reads import Inputs

log = logging.getLogger(__name__)
CACHE_DIR = ".nb2prod-cache"


def _entry(out_dir: Path, cache_key: str) -> Path:
    return out_dir / CACHE_DIR / f"{cache_key}.json"


def _in_store(kind: str, tag: str) -> bool:
    return store.exists(kind, tag)


def lookup(out_dir: Path, cache_key: str) -> dict[str, Any] | None:
    """The recorded build for ``cache_key``, if all that it made is still in place."""
    path = _entry(out_dir, cache_key)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        manifest = Path(entry["build_dir"]) / "src" / "nb2prod.json"
        version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None
    why = reads.changed(entry.get("inputs"))
    if why is not None:  # the entry stays: a notebook with the cache off keeps saying so
        log.info("%s; building", why)
        return None
    fresh = (
        version == entry["version"]
        and Path(entry["bento_path"]).is_file()
        and _in_store("bento", entry["tag"])
        and _in_store("model", entry["model_tag"])
    )
    if not fresh:
        log.info("cache entry %s is stale; building", path.name)
        with suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    return entry


def record(
    out_dir: Path, cache_key: str, result: BuildResult, model_tag: str, inputs: Inputs
) -> None:
    """Remember ``result`` under ``cache_key``, with the ``inputs`` its training read; best
    effort.

    The bento is built and exported by then, so a cache that cannot be written (a plain
    file named ``.nb2prod-cache``, a full disk) is a warning, and the next build a full one.
    """
    path = _entry(out_dir, cache_key)
    entry = {
        "tag": result.tag,
        "version": result.version,
        "model_tag": model_tag,
        "metrics": result.metrics,
        "gates": result.gates,
        "bento_path": str(result.bento_path),
        "build_dir": str(result.build_dir),
        "inputs": inputs.to_dict(),
    }
    partial = path.with_suffix(".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(entry, indent=2), encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        log.warning(
            "the build cache in %s could not be written (%s); the next build of this notebook "
            "will not be a cache hit",
            path.parent,
            exc.strerror or exc,
        )
