"""Find a bento however it is named (build directory, ``src/``, ``.bento`` file, store tag).

Every command that takes a bento (``nb2prod test``, ``nb2prod monitor``, and the ones to
come) opens it here, so they all accept the same things and fail with the same words.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nb2prod.errors import BentoNotFound, MonitorError, RegistryError

if TYPE_CHECKING:
    import pandas as pd
    from pandera.api.pandas.container import DataFrameSchema

log = logging.getLogger(__name__)
MANIFEST = "nb2prod.json"
MODEL_FILE = "model.pkl"


@dataclass
class Bento:
    """A bento's ``src/`` and manifest, and its model file when one is at hand."""

    src: Path
    manifest: dict[str, Any]
    model_file: Path | None  # None: the model is in the BentoML store under manifest model_tag
    kind: str  # "build", "file" or "store"

    @property
    def tag(self) -> str:
        return self.manifest.get("tag", str(self.src))


@dataclass(frozen=True)
class Pipeline:
    """A bento's lifted modules, imported under a private package name."""

    schema_module: ModuleType
    features_module: ModuleType | None
    input_schema: DataFrameSchema
    # the feature function, or None when inputs go straight to the model
    entrypoint: Callable[[pd.DataFrame], pd.DataFrame] | None


def _src_dir(path: Path) -> Path | None:
    for candidate in (path, path / "src"):
        if (candidate / MANIFEST).is_file():
            return candidate
    return None


def _manifest(src: Path) -> dict[str, Any]:
    return json.loads((src / MANIFEST).read_text(encoding="utf-8"))


def store_model(tag: str) -> Path | None:
    """The model file of ``tag`` in the BentoML store, or None (looked up only when needed)."""
    try:
        import bentoml

        return Path(bentoml.models.get(tag).path_of(MODEL_FILE))
    except Exception:  # not in this store: callers say what they do without it
        log.debug("model %s not found", tag, exc_info=True)
        return None


def model_file(bento: Bento) -> Path:
    """The bento's model file: the build's ``train/``, the archive's ``models/`` or the store's.

    Raises:
        BentoNotFound: the model is in none of them (a store tag whose model is elsewhere).
    """
    found = bento.model_file or store_model(bento.manifest["model_tag"])
    if found is None:
        raise BentoNotFound(
            f"The model {bento.manifest['model_tag']} of {bento.tag} is not in this BentoML "
            "store: import it (bentoml models import) or give the .bento file."
        )
    return Path(found)


@contextmanager
def open_bento(target: str | Path, *, writable: bool = False) -> Iterator[Bento]:
    """Open the bento named by ``target``: a build directory or its ``src/``, a ``.bento``
    file, a tag in the BentoML store, or a registry version (``churn@champion``,
    ``churn:v3``: :func:`nb2prod.lifecycle.registry.resolve`).

    Args:
        target: the bento, as the user named it.
        writable: give a ``src/`` that may be written to (a store bento is then copied to a
            temporary directory first, so nothing lands inside the store).

    Raises:
        BentoNotFound: nothing of that name exists, or it was not made by nb2prod (a
            registry version that does not resolve to a bento in the store, too).
    """
    target = _registry_version(target)
    # Resolved once, here: the tests run with src/ as their working directory, so a path
    # relative to the caller's (bentos/churn-<version>/train/model.pkl) would name nothing.
    path = Path(target).expanduser()
    if path.exists():
        path = path.resolve()
    if path.is_dir():
        src = _src_dir(path)
        if src is None:
            raise BentoNotFound(f"{path} is not a build directory: it has no {MANIFEST}.")
        model = src.parent / "train" / MODEL_FILE
        yield Bento(src, _manifest(src), model if model.is_file() else None, "build")
        return
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="nb2prod-bento-") as tmp:
            try:
                with tarfile.open(path) as archive:
                    archive.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise BentoNotFound(f"{path} is not a .bento archive ({exc}).") from exc
            src = _src_dir(Path(tmp))
            if src is None:
                raise BentoNotFound(f"{path} is not a bento made by nb2prod: it has no {MANIFEST}.")
            models = sorted(Path(tmp).glob(f"models/*/*/{MODEL_FILE}"))
            yield Bento(src, _manifest(src), models[0] if models else None, "file")
        return
    try:
        import bentoml

        found = bentoml.get(str(target))
    except Exception as exc:
        raise BentoNotFound(
            f"No bento `{target}`: it is not a build directory, a .bento file or a tag in the "
            "BentoML store (bentoml list)."
        ) from exc
    src = Path(found.path_of("src"))
    if not (src / MANIFEST).is_file():
        raise BentoNotFound(f"Bento {target} was not made by nb2prod: it has no {MANIFEST}.")
    if not writable:
        yield Bento(src, _manifest(src), None, "store")
        return
    with tempfile.TemporaryDirectory(prefix="nb2prod-bento-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(src, copy)
        yield Bento(copy, _manifest(copy), None, "store")


def _registry_version(target: str | Path) -> str | Path:
    """The bento tag a registry version names (``churn@champion``; ``churn:v3`` unless the
    BentoML store has a bento of that very tag), else ``target`` as it was."""
    from nb2prod.lifecycle import registry  # mlflow only for NAME@ALIAS and NAME:vN

    text = str(target)
    if Path(target).expanduser().exists() or not registry.is_ref(text):
        return target
    if "@" not in text and registry.in_store(text):
        return target  # a BentoML tag whose version is v3
    if "@" not in text and not registry.exists():
        return target  # no registry here: the store lookup below says it is not found
    try:
        return registry.resolve(text)
    except RegistryError as exc:
        raise BentoNotFound(f"No bento `{text}`: {exc}") from exc


def load_pipeline(src: Path, manifest: dict[str, Any]) -> Pipeline:
    """Import ``src/lifted`` as a uniquely named package, so that two bentos never collide.

    Raises:
        MonitorError: the lifted code is missing or does not import here.
    """
    package = src / "lifted"
    name = "_nb2prod_lifted_" + hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:12]
    try:
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                name, package / "__init__.py", submodule_search_locations=[str(package)]
            )
            if spec is None or spec.loader is None:
                raise ImportError(f"no package at {package}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        schema_module = importlib.import_module(f"{name}.schema")
        entry = manifest.get("entrypoint")
        features_module = importlib.import_module(f"{name}.features") if entry else None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise MonitorError(
            f"Cannot import the lifted schema of {manifest.get('tag', src)} from {package}: {exc}."
        ) from exc
    model = getattr(schema_module, manifest["input_schema"])
    return Pipeline(
        schema_module=schema_module,
        features_module=features_module,
        input_schema=model.to_schema(),
        entrypoint=getattr(features_module, entry) if features_module else None,
    )
