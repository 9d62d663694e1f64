"""Turn a checked notebook and its training run into the generated sources of a bento."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import keyword
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod import serving
from nb2prod._version import __version__
from nb2prod.builder import identity
from nb2prod.builder.codegen import Generated, comment, generate
from nb2prod.errors import CodegenError, NotebookError, ParameterError
from nb2prod.gate.strategies import plan_tests

if TYPE_CHECKING:
    from collections.abc import Callable

    from nb2prod.builder.compile import Serving
    from nb2prod.builder.training import TrainingResult
    from nb2prod.notebook.analysis import CheckResult, Import
    from nb2prod.notebook.read import Cell

# Serving settings, measured in docs/performance.md: batches of up to max_batch_rows rows from
# concurrent requests, one OpenMP thread per model call, 429 past max_concurrency requests.
SERVING = {"max_batch_rows": 20_000, "model_threads": 1, "timeout": 30, "max_concurrency": 256}
MAX_ROWS = 10_000  # rows one request may hold
BODY_BYTES_PER_VALUE = 128  # the body limit: MAX_ROWS rows of this many bytes per column
LOG_MAX_MB = 512  # the prediction log's default size cap
# The line above each lifted cell, so a traceback or a failure report points at its cell;
# the gate's failure report reads it back. The notebook's name and the cell id are written
# with codegen.comment (one line, escaped), so the id runs to the last ")" of the line.
MARKER = "# %% {notebook} · cell {index} ({id})"
MARKER_PATTERN = re.compile(r"^# %% (?P<nb>.+) · cell (?P<index>\d+) \((?P<id>.*)\)$")


@dataclass(frozen=True)
class Lifted:
    """The generated sources and the identity of the build."""

    files: list[Generated]
    version: str
    lifted_sha256: str
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"


def header(notebook: str) -> str:
    return f"Generated from {notebook} by nb2prod {__version__}; edit the notebook, not this file."


def class_name(name: str) -> str:
    """The service's class name: ``churn_v2`` -> ``ChurnV2``; a Python name whatever ``name`` is."""
    text = "".join(p.capitalize() for p in re.split(r"[^0-9a-zA-Z]+", name)) or "Model"
    if not text.isidentifier() or keyword.iskeyword(text):  # ``2024_churn``, ``none``
        text = f"Service{text}"
    return text


def marker(notebook: str, cell: Cell) -> str:
    """The marker line above a lifted cell; a comment whatever the name and the id hold."""
    return MARKER.format(notebook=comment(notebook), index=cell.index, id=comment(cell.id))


def _cells(checked: CheckResult, cells: list[Cell]) -> list[dict[str, str]]:
    nb = checked.notebook.path.name
    return [{"marker": marker(nb, c), "source": c.source.rstrip()} for c in cells]


def _params(checked: CheckResult, names: list[str], values: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for name in names:
        value = values.get(name)
        try:
            ast.literal_eval(value) if value is not None else None
        except (ValueError, SyntaxError):
            value = None
        if value is None:
            raise ParameterError(
                f"{checked.notebook.path.name}: parameter `{name}` is used by lifted code, but its "
                "value from the training run is not a plain literal (number, string, list, ...).",
                name=name,
            )
        out.append({"name": name, "value": value, "learned": False})
    return out


_NON_FINITE = ("nan", "inf", "-inf")  # written float("nan"): a float literal cannot hold them


def _is_value(text: str) -> bool:
    """``text`` is a literal, where NaN and infinity are written ``float("nan")``."""

    class Finite(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            if (
                isinstance(node.func, ast.Name)
                and node.func.id == "float"
                and not node.keywords
                and len(node.args) == 1
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in _NON_FINITE
            ):
                return ast.Constant(0.0)
            return node  # literal_eval refuses any other call

    try:
        ast.literal_eval(Finite().visit(ast.parse(text, mode="eval")))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return False
    return True


def _learned(checked: CheckResult, names: list[str], values: dict[str, str]) -> list[dict]:
    """nb2prod.learned names the lifted cells use, with their values from the training run."""
    out = []
    for name in names:
        value = values.get(name)
        if value is None or not _is_value(value):
            raise ParameterError(
                f"{checked.notebook.path.name}: `{name}` (nb2prod.learned) is used by lifted "
                "code, but the training run left no plain literal value for it (number, "
                "string, list, dict, ...); rebuild, or make it one.",
                name=name,
            )
        out.append({"name": name, "value": value, "learned": True})
    return out


def _imports(imports: list[Import]) -> list[dict[str, str]]:
    return [{"source": i.source, "where": i.cell.where} for i in imports]


def git(folder: Path, *args: str) -> str | None:
    """``git -C folder *args``'s output, stripped; None outside a work tree or without git."""
    try:
        command = ["git", "-C", str(folder), *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _git_commit(path: Path) -> str | None:
    return git(path.parent, "rev-parse", "HEAD")


def _repo_path(path: Path) -> str | None:
    """``path`` relative to its git work tree's root, where another clone finds it."""
    top = git(path.parent, "rev-parse", "--show-toplevel")
    if top is None or not path.is_relative_to(root := Path(top).resolve()):
        return None
    return path.relative_to(root).as_posix()


def lift(
    checked: CheckResult,
    training: TrainingResult,
    extra: dict[str, Any] | None = None,
    *,
    gate: bool = True,
    runtime: Callable[[list[Generated]], Serving] | None = None,
) -> Lifted:
    """Render every generated file for ``checked`` after ``training``; decide the version.

    ``extra`` is merged into the manifest (gate results, ...). ``gate`` says whether the
    build runs the property tests as its gate; the manifest records it. ``runtime`` decides
    which runtime serves, given the lifted package (the build's is
    :func:`nb2prod.builder.compile.decide`); without it the pickle serves.
    """
    nb, plan, settings = checked.notebook, checked.plan, checked.notebook.settings
    defer = deferral(nb.path.name, settings.defer_below, training)
    base = {
        "header": header(nb.path.name),
        "notebook": nb.path.name,
        "entrypoint": plan.entrypoint,
        "input_schema": plan.input_schema,
        "output_schema": plan.output_schema,
        "from_schema": plan.from_schema,
        "schema_imports": _imports(plan.schema_imports),
        "feature_imports": _imports(plan.feature_imports),
        # parameters, then nb2prod.learned names: the template lays them out apart
        "schema_params": _params(checked, plan.schema_params, training.params)
        + _learned(checked, plan.schema_learned, training.learned),
        "feature_params": _params(checked, plan.feature_params, training.params)
        + _learned(checked, plan.feature_learned, training.learned),
        "schema_cells": _cells(checked, plan.schema_cells),
        "feature_cells": _cells(checked, plan.feature_cells),
    }
    code = generate(
        base,
        {
            "lifted/__init__.py": "lifted_init.py.jinja",
            "lifted/schema.py": "schema.py.jinja",
            "lifted/features.py": "features.py.jinja",
        },
    )
    lifted_sha = hashlib.sha256("".join(g.text for g in code).encode()).hexdigest()
    serving = (
        runtime(code).to_manifest()
        if runtime
        else {"runtime": "python", "reason": "the compiled model was not tried", "parity": None}
    )
    schema_source = next(g.text for g in code if g.path == "lifted/schema.py")
    props = plan_tests(checked, training.reference_file, schema_source, gate=gate)
    ref = identity.fingerprint(training.reference_file)
    compiled = serving["runtime"] == "compiled"  # its engines: "onnxruntime+treelite", ...
    engines = (serving.get("parity") or {}).get("engine", "onnxruntime") if compiled else ""
    pins = identity.packages(checked, training, compiled=tuple(filter(None, engines.split("+"))))
    lifted_params = {p: training.params[p] for p in plan.lifted_params}
    version = identity.version(
        lifted_sha256=lifted_sha,
        params=training.params,
        reference_sha256=ref["sha256"],
        packages=pins,
        properties=props.manifest,
        monitoring=settings.monitoring,
        serving={"coercion": settings.coercion, "runtime": serving["runtime"]}
        | ({"defer_below": defer} if defer is not None else {})
        | {"explain_max_rows": settings.explain_max_rows},
    )
    name = settings.name
    import pandas as pd

    columns = list(pd.read_parquet(training.reference_file).columns)
    manifest = {
        "name": name,
        "version": version,
        "tag": f"{name}:{version}",
        "model_tag": f"{name}-model:{version}",
        "notebook": nb.path.name,
        "notebook_sha256": nb.sha256,
        # where `nb2prod rebuild` looks for it: this path, then the repository path in a clone
        "notebook_path": str(nb.path.resolve()),
        "notebook_repo_path": _repo_path(nb.path.resolve()),
        "lifted_sha256": lifted_sha,
        "parameters": training.params,
        "lifted_parameters": lifted_params,
        "learned": {n: training.learned[n] for n in plan.lifted_learned},
        "metrics": training.metrics,
        "reference": ref,
        "input_schema": plan.input_schema,
        "output_schema": plan.output_schema,
        "entrypoint": plan.entrypoint,
        "packages": pins,
        "git_commit": _git_commit(nb.path.resolve()),
        "nb2prod_version": __version__,
        "python": sys.version.split()[0],
        "build_time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "properties": props.manifest,
        # which runtime serves, and why (builder/compile.py); defer_below when it is set
        "serving": serving | ({"defer_below": defer} if defer is not None else {}),
        **(extra or {}),
    }
    context = {
        **base,
        "name": name,
        "class_name": class_name(name),
        "version": version,
        "model_tag": manifest["model_tag"],
        "input_columns": columns,
        "has_proba": training.has_proba,
        "classes": training.classes,
        "proba_columns": [f"proba_{c}" for c in training.classes],
        "log_max_mb": LOG_MAX_MB,
        "max_rows": MAX_ROWS,
        "max_body_bytes": MAX_ROWS * BODY_BYTES_PER_VALUE * (len(columns) + 1),
        "lenient": settings.coercion == "lenient",
        "defer_below": defer,
        **explanation(training),
        "explain_max_rows": settings.explain_max_rows,
        **SERVING,
        "nb2prod_version": __version__,
        "labels": {
            "nb2prod.notebook_sha256": nb.sha256[:16],
            "nb2prod.lifted_sha256": lifted_sha[:16],
        },
        "include": ["*.py", "lifted/*.py", "nb2prod.json", "tests/*.py", "monitoring/*"],
        "packages": pins,
        "properties": props.context,
    }
    rest = generate(
        context,
        {
            "service.py": "service.py.jinja",
            "tests/test_parity.py": "test_parity.py.jinja",
            "tests/test_properties.py": "test_properties.py.jinja",
            "bentofile.yaml": "bentofile.yaml.jinja",
        },
    )
    files = [*code, *rest, *runtime_files(nb.path.name), manifest_file(manifest)]
    return Lifted(files, version, lifted_sha, manifest)


def deferral(notebook: str, defer_below: float | None, training: TrainingResult) -> float | None:
    """``serving.defer_below`` when the model can honour it: a classifier with predict_proba.

    Raises:
        NotebookError: the setting is on and the model is a regressor, or has no predict_proba.
    """
    if defer_below is None or (training.classes and training.has_proba):
        return None if defer_below is None else float(defer_below)
    what = "a classifier without predict_proba" if training.classes else "a regressor"
    raise NotebookError(
        f"{notebook}: notebook setting nb2prod.serving.defer_below needs a classifier's top "
        f"class probability, and the model is {what}: a point prediction has no sound measure "
        "of confidence to defer on; remove the setting.",
        notebook=notebook,
    )


def explanation(training: TrainingResult) -> dict[str, Any]:
    """What POST /explain explains: a regressor's prediction, a binary classifier's
    probability of ``classes[1]``, a multiclass one's probability of each class; a classifier
    without predict_proba has no /explain (``explained`` empty)."""
    classes = list(training.classes)
    if not classes:
        explained, what, index = ["prediction"], "the prediction", ""
    elif not training.has_proba:
        explained, what, index = [], "", ""
    elif len(classes) == 2:
        explained, index = [f"proba_{classes[1]}"], "1"
        what = f"the probability of class {classes[1]!r} (classes[1])"
    else:
        explained, what, index = [str(c) for c in classes], "the probability of each class", ""
    return {"explained": explained, "explained_what": what, "explained_index": index}


def runtime_files(notebook: str) -> list[Generated]:
    """nb2prod's runtime modules as the bento ships them: the header line, then the module."""
    out = []
    for path, text in serving.sources().items():
        try:
            compile(text, path, "exec")
        except SyntaxError as exc:  # pragma: no cover - the runtime is linted and tested
            raise CodegenError(f"nb2prod's runtime module {path} does not compile: {exc}.") from exc
        out.append(Generated(path, f"# {comment(header(notebook))}\n{text}"))
    return out


def manifest_file(manifest: dict[str, Any]) -> Generated:
    """``nb2prod.json``: the manifest as the bento ships it."""
    return Generated("nb2prod.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
