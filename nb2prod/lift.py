"""Turn a checked notebook and its training run into the generated sources of a bento."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import importlib.metadata as md
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nb2prod import __version__
from nb2prod.analysis import CheckReport
from nb2prod.codegen import Generated, generate, template_dir
from nb2prod.errors import ParameterError
from nb2prod.monitoring import LOG_MAX_MB
from nb2prod.properties import plan as plan_properties
from nb2prod.training import TrainingResult

# Packages every bento needs at serve time, whatever the notebook imports.
BASE_PACKAGES = ("bentoml", "pandas", "numpy", "pandera", "pyarrow")
# Serving settings, measured in docs/performance.md: batches of up to max_batch_rows rows from
# concurrent requests, one OpenMP thread per model call, 429 past max_concurrency requests.
SERVING = {"max_batch_rows": 20_000, "model_threads": 1, "timeout": 30, "max_concurrency": 256}
MAX_ROWS = 10_000


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
    return (
        "".join(p.capitalize() for p in name.replace("-", "_").replace(".", "_").split("_"))
        or "Model"
    )


def _cells(report: CheckReport, cells: list) -> list[dict[str, str]]:
    nb = report.notebook.path.name
    return [
        {"marker": f"{nb} · cell {c.index} ({c.id})", "source": c.source.rstrip()} for c in cells
    ]


def _params(report: CheckReport, names: list[str], values: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for name in names:
        value = values.get(name)
        try:
            ast.literal_eval(value) if value is not None else None
        except (ValueError, SyntaxError):
            value = None
        if value is None:
            raise ParameterError(
                f"{report.notebook.path.name}: parameter `{name}` is used by lifted code, but its "
                "value from the training run is not a plain literal (number, string, list, ...).",
                name=name,
            )
        out.append({"name": name, "value": value})
    return out


def _imports(imports: list) -> list[dict[str, str]]:
    return [{"source": i.source, "where": i.cell.where} for i in imports]


def packages(report: CheckReport, training: TrainingResult) -> list[str]:
    """``name==version`` pins, from the training environment, for what serving imports."""
    roots = set(BASE_PACKAGES) | {training.model_module.split(".")[0]}
    plan = report.plan
    for imp in [*plan.schema_imports, *plan.feature_imports]:
        roots |= {_root(n) for n in _imported_modules(imp.source)}
    for cell in [*plan.schema_cells, *plan.feature_cells]:
        try:
            roots |= {_root(n) for n in _imported_modules(cell.source)}
        except SyntaxError:
            continue
    return pin(roots)


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


def _root(module: str) -> str:
    return module.split(".")[0]


def _imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def templates_sha256() -> str:
    """Hash of nb2prod's templates: a generator change is a new bento, even in development."""
    digest = hashlib.sha256()
    for path in sorted(template_dir().glob("*.jinja")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(reference_file: Path) -> dict[str, Any]:
    """A content fingerprint of the reference frame that ignores parquet metadata."""
    import pandas as pd

    frame = pd.read_parquet(reference_file)
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return {"rows": len(frame), "columns": list(frame.columns), "sha256": digest.hexdigest()}


def _git_commit(path: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(path.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def lift(
    report: CheckReport,
    training: TrainingResult,
    extra: dict[str, Any] | None = None,
    *,
    gate: bool = True,
) -> Lifted:
    """Render every generated file for ``report`` after ``training``; decide the version.

    ``extra`` is merged into the manifest (gate results, ...). ``gate`` says whether the
    build runs the property tests as its gate; the manifest records it.
    """
    nb, plan, settings = report.notebook, report.plan, report.notebook.settings
    base = {
        "header": header(nb.path.name),
        "notebook": nb.path.name,
        "entrypoint": plan.entrypoint,
        "input_schema": plan.input_schema,
        "output_schema": plan.output_schema,
        "from_schema": plan.from_schema,
        "schema_imports": _imports(plan.schema_imports),
        "feature_imports": _imports(plan.feature_imports),
        "schema_params": _params(report, plan.schema_params, training.params),
        "feature_params": _params(report, plan.feature_params, training.params),
        "schema_cells": _cells(report, plan.schema_cells),
        "feature_cells": _cells(report, plan.feature_cells),
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
    schema_source = next(g.text for g in code if g.path == "lifted/schema.py")
    props = plan_properties(report, training.reference_file, schema_source, gate=gate)
    ref = fingerprint(training.reference_file)
    pins = packages(report, training)
    lifted_params = {p: training.params[p] for p in plan.lifted_params}
    identity = json.dumps(
        {
            "lifted": lifted_sha,
            "params": training.params,
            "reference": ref["sha256"],
            "packages": pins,
            "nb2prod": __version__,
            "templates": templates_sha256(),
            "properties": props.manifest,
            "monitoring": settings.monitoring,
        },
        sort_keys=True,
    )
    version = hashlib.sha256(identity.encode()).hexdigest()[:12]
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
        "lifted_sha256": lifted_sha,
        "parameters": training.params,
        "lifted_parameters": lifted_params,
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
            "nb2prod_runtime.py": "runtime.py.jinja",
            "nb2prod_sink.py": "sink.py.jinja",
            "tests/test_parity.py": "test_parity.py.jinja",
            "tests/test_properties.py": "test_properties.py.jinja",
            "tests/conftest.py": "conftest.py.jinja",
            "bentofile.yaml": "bentofile.yaml.jinja",
        },
    )
    return Lifted([*code, *rest, manifest_file(manifest)], version, lifted_sha, manifest)


def manifest_file(manifest: dict[str, Any]) -> Generated:
    """``nb2prod.json``: the manifest as the bento ships it."""
    return Generated("nb2prod.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
