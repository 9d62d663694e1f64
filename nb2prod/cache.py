"""The build cache: an unchanged notebook is found before training, and its bento reused.

The key covers everything a build reads: the notebook's bytes, the parameters, the gate
switch, the versions of every package the notebook imports (and of the serving base), the
Python version, nb2prod's templates, source and version, and the bytes of every data file the
notebook names by a string literal (``pd.read_csv("data/churn.csv")``). A hit is used only
when the build directory, the ``.bento`` file and the store's bento and model are all still
there and agree on the version.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from nb2prod import __version__
from nb2prod import bento as store
from nb2prod.lift import BASE_PACKAGES, pin, templates_sha256
from nb2prod.notebook import Notebook

log = logging.getLogger(__name__)
CACHE_DIR = ".nb2prod-cache"
_MAX_PATH = 400


def _modules_and_strings(nb: Notebook) -> tuple[set[str], set[str]]:
    modules, strings = set(BASE_PACKAGES), set()
    for cell in nb.cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # magics: the notebook's bytes are in the key anyway
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    strings = {s for s in strings if 0 < len(s) < _MAX_PATH and "\n" not in s}
    return modules, strings


def _packages(modules: set[str]) -> list[str]:
    return pin(modules)


def _data_files(nb: Notebook, strings: set[str]) -> dict[str, str]:
    found = {}
    for text in sorted(strings):
        try:
            path = (nb.path.parent / text).resolve()
            if not path.is_file():
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except (OSError, ValueError):
            continue
        found[text] = digest.hexdigest()
    return found


def _nb2prod_source() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(nb: Notebook, params: dict[str, Any], *, gate: bool) -> str:
    """The cache key of building ``nb`` with ``params``: a sha256 hex digest."""
    modules, strings = _modules_and_strings(nb)
    identity = {
        "notebook": nb.sha256,
        "params": params,
        "gate": gate,
        "packages": _packages(modules),
        "python": sys.version,
        "data": _data_files(nb, strings),
        "templates": templates_sha256(),
        "nb2prod": __version__,
        "nb2prod_source": _nb2prod_source(),
    }
    text = json.dumps(identity, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(out_dir: Path, cache_key: str) -> Path:
    return out_dir / CACHE_DIR / f"{cache_key}.json"


def _in_store(kind: str, tag: str) -> bool:
    # The store is a directory tree; looking there first spares the 2 s import of bentoml.
    name, _, version = tag.partition(":")
    home = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
    folder, marker = ("bentos", "bento.yaml") if kind == "bento" else ("models", "model.yaml")
    return (home / folder / name / version / marker).is_file() or store.exists(kind, tag)


def lookup(out_dir: Path, cache_key: str) -> dict[str, Any] | None:
    """The recorded build for ``cache_key``, if all that it made is still in place."""
    path = _entry(out_dir, cache_key)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        manifest = Path(entry["build_dir"]) / "src" / "nb2prod.json"
        version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None
    fresh = (
        version == entry["version"]
        and Path(entry["bento_path"]).is_file()
        and _in_store("bento", entry["tag"])
        and _in_store("model", entry["model_tag"])
    )
    if not fresh:
        log.info("cache entry %s is stale; building", path.name)
        path.unlink(missing_ok=True)
        return None
    return entry


def record(out_dir: Path, cache_key: str, result: Any, model_tag: str) -> None:
    """Remember ``result`` (a BuildResult) under ``cache_key``."""
    path = _entry(out_dir, cache_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "tag": result.tag,
        "version": result.version,
        "model_tag": model_tag,
        "metrics": result.metrics,
        "gates": result.gates,
        "bento_path": str(result.bento_path),
        "build_dir": str(result.build_dir),
    }
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(entry, indent=2), encoding="utf-8")
    partial.replace(path)
