"""What makes two builds "the same": package pins, generator hash, data fingerprint, version
and the cache key computed before training, side by side so they cannot drift apart."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod._version import __version__
from nb2prod.builder.codegen import template_dir
from nb2prod.serving import HERE as SERVING_DIR

if TYPE_CHECKING:
    from nb2prod.builder.training import TrainingResult
    from nb2prod.notebook.analysis import CheckResult
    from nb2prod.notebook.read import Notebook

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Packages every bento needs at serve time, whatever the notebook imports (shap: POST
# /explain, on every regressor and classifier; imported on its first request).
BASE_PACKAGES = ("bentoml", "pandas", "numpy", "pandera", "pyarrow", "shap")
_MAX_PATH = 400  # longer string literals are not file names


def pin(modules: set[str]) -> list[str]:
    """``name==version`` for the installed distributions behind top-level ``modules``."""
    dists = md.packages_distributions()
    pins = set()
    for module in modules - set(sys.stdlib_module_names):
        for dist in dists.get(module, [module]):
            try:
                pins.add(f"{dist.lower()}=={md.version(dist)}")
            except md.PackageNotFoundError:
                continue
    return sorted(pins)


def _imported_modules(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports (relative imports left out)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def packages(
    checked: CheckResult, training: TrainingResult, *, compiled: tuple[str, ...] = ()
) -> list[str]:
    """The bento's pins, from the training environment, for what serving imports (the
    compiled model's engines, onnxruntime and treelite, only when it serves them)."""
    roots = set(BASE_PACKAGES) | {training.model_module.split(".")[0]} | set(compiled)
    plan = checked.plan
    for imp in [*plan.schema_imports, *plan.feature_imports]:
        roots |= _imported_modules(imp.source)
    for cell in [*plan.schema_cells, *plan.feature_cells]:
        try:
            roots |= _imported_modules(cell.source)
        except SyntaxError:
            continue
    return pin(roots)


def _digest(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def generator_sha256() -> str:
    """Hash of what generates a bento's sources: the templates and the runtime modules.

    A generator change is a new bento, even in development, when nb2prod's version stays.
    """
    templates = template_dir()
    return hashlib.sha256(
        (
            _digest(sorted(templates.glob("*.jinja")), templates)
            + _digest(sorted(SERVING_DIR.glob("*.py")), SERVING_DIR)
        ).encode()
    ).hexdigest()


def fingerprint(reference_file: Path) -> dict[str, Any]:
    """A content fingerprint of the reference frame that ignores parquet metadata."""
    import pandas as pd

    frame = pd.read_parquet(reference_file)
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return {"rows": len(frame), "columns": list(frame.columns), "sha256": digest.hexdigest()}


def version(
    *,
    lifted_sha256: str,
    params: dict[str, Any],
    reference_sha256: str,
    packages: list[str],
    properties: dict[str, Any],
    monitoring: dict[str, Any],
    serving: dict[str, Any],
) -> str:
    """The bento's version: a short hash of everything that decides what it does."""
    identity = json.dumps(
        {
            "lifted": lifted_sha256,
            "params": params,
            "reference": reference_sha256,
            "packages": packages,
            "nb2prod": __version__,
            "generator": generator_sha256(),
            "properties": properties,
            "monitoring": monitoring,
            "serving": serving,
        },
        sort_keys=True,
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def _modules_and_strings(nb: Notebook) -> tuple[set[str], set[str]]:
    modules, strings = set(BASE_PACKAGES), set()
    for cell in nb.cells:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # magics: the notebook's bytes are in the key anyway
            continue
        modules |= _imported_modules(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    strings = {s for s in strings if 0 < len(s) < _MAX_PATH and "\n" not in s}
    return modules, strings


def _data_files(nb: Notebook, strings: set[str]) -> dict[str, str]:
    """sha256 of each file the notebook names by a string literal, relative to its folder."""
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


def nb2prod_source_sha256() -> str:
    """Hash of nb2prod's own Python source, every package of it."""
    return _digest(sorted(PACKAGE_DIR.rglob("*.py")), PACKAGE_DIR)


def cache_key(nb: Notebook, params: dict[str, Any], *, gate: bool) -> str:
    """The build cache key of ``nb`` with ``params``, known before training: a sha256 digest.

    It covers everything a build reads: the notebook's bytes, the parameters, the gate
    switch, the versions of every package the notebook imports (and of the serving base), the
    Python version, nb2prod's generator, source and version, and the bytes of every data
    file the notebook names by a string literal (``pd.read_csv("data/churn.csv")``).

    The key alone cannot know data read under a computed path (``DATA + "train.csv"``):
    the cache entry also keeps the hash of every file the training run read, and the
    lookup checks them (:mod:`nb2prod.builder.reads`). The literal files stay in the key
    because some readers open files in C, past the audit hook (h5py, OpenCV, xgboost's
    ``DMatrix("train.buffer")``): named literally, those are still covered.
    """
    modules, strings = _modules_and_strings(nb)
    identity = {
        "notebook": nb.sha256,
        "params": params,
        "gate": gate,
        "packages": pin(modules),
        "python": sys.version,
        "data": _data_files(nb, strings),
        "generator": generator_sha256(),
        "nb2prod": __version__,
        "nb2prod_source": nb2prod_source_sha256(),
    }
    text = json.dumps(identity, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()
