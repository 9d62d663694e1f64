"""Run the notebook with papermill: skip cells removed, parameters applied, results exported."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.builder import evaluation, reads
from nb2prod.builder.codegen import render
from nb2prod.errors import ParameterError, TrainingError
from nb2prod.notebook.check import check, check_params
from nb2prod.notebook.shape import CELL_ID

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from nb2prod.notebook.analysis import CheckResult
    from nb2prod.notebook.read import Notebook

log = logging.getLogger(__name__)
EXPORT_TAG = "nb2prod-export"
EXECUTED = "executed.ipynb"
REFERENCE_ROWS = 5000  # raw training rows shipped with the bento; predictions cover all of them
_OS_ERRORS = {"OSError", "IOError", "PermissionError", "FileNotFoundError", "IsADirectoryError"}


@dataclass(frozen=True)
class TrainingResult:
    """What the training run left in ``directory``."""

    directory: Path
    executed: Path
    params: dict[str, Any]  # values of every parameter as the kernel saw them (repr strings)
    metrics: dict[str, float]
    reference_rows: int
    has_proba: bool
    model_module: str
    classes: list
    # nb2prod.learned names lifted code uses: Python source of their values from the run
    learned: dict[str, str] = field(default_factory=dict)
    # {"X", "y", "rows"} of the evaluation rows written, or {"X", "y", "skipped": why}; None:
    # the notebook has none (nb2prod.builder.evaluation)
    evaluation: dict[str, Any] | None = None

    @property
    def evaluation_file(self) -> Path | None:
        """The evaluation rows the export cell wrote; None when it wrote none."""
        path = self.directory / evaluation.FILE
        return path if self.evaluation and "rows" in self.evaluation else None

    @property
    def model_file(self) -> Path:
        return self.directory / "model.pkl"

    @property
    def reference_file(self) -> Path:
        return self.directory / "reference.parquet"

    @property
    def predictions_file(self) -> Path:
        return self.directory / "predictions.parquet"


def parse_params(pairs: list[tuple[str, str]] | None, file: Path | None) -> dict[str, Any]:
    """Turn ``-p NAME VALUE`` pairs and a YAML/JSON ``--params`` file into typed values.

    Values are read as YAML scalars, so ``300`` is an int, ``0.5`` a float, ``true`` a bool.

    Raises:
        ParameterError: the file cannot be read, or a value is nested too deeply or holds itself.
    """
    import yaml

    params: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, RecursionError) as exc:
            raise ParameterError(f"Cannot read parameters file {file}: {exc}.") from exc
        if not isinstance(loaded, dict):
            raise ParameterError(f"Parameters file {file} must hold a mapping of name to value.")
        params.update(loaded)
    for name, value in pairs or []:
        try:
            params[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            params[name] = value
        except RecursionError:
            raise ParameterError(f"Parameter `{name}` is nested too deeply to read.") from None
    try:  # the manifest and the build jobs record them as JSON
        json.dumps(params, default=str)
    except (RecursionError, ValueError):
        raise ParameterError(
            "A parameter value is nested too deeply, or holds itself (a YAML anchor such as "
            "`&a [*a]`)."
        ) from None
    return params


def prepare(nb: Notebook, out_dir: Path, checked: CheckResult) -> NotebookNode:
    """The notebook papermill runs: skip cells out, ``#|`` parameters tagged, export cell in.

    It is nbformat 4.5 whatever the notebook's minor version, every cell with an id (the
    one nb2prod names it by), so the injected cells, which carry ids, leave it valid. The
    reads cells come first and last (:mod:`nb2prod.builder.reads`).
    """
    import nbformat

    node = nbformat.from_dict(copy.deepcopy(nb.node))
    by_index = {c.index: c for c in nb.cells}
    kept, ids = [], set()
    for index, cell in enumerate(node.cells):
        role_cell = by_index.get(index)
        if role_cell and role_cell.role == "skip":
            continue
        cell.setdefault("metadata", {})
        cell_id = role_cell.id if role_cell else cell.get("id")
        if not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id) or cell_id in ids:
            cell_id = f"index-{index}"  # markdown without one, or an id repeated
        cell["id"] = cell_id
        ids.add(cell_id)
        if role_cell:
            # the executed notebook keeps the user's cell number, for error messages
            cell.metadata["nb2prod_cell"] = role_cell.index
        if role_cell and role_cell.role == "parameters":
            tags = cell.metadata.setdefault("tags", [])
            if "parameters" not in tags:
                tags.append("parameters")
        kept.append(cell)

    settings = nb.settings
    source = render(
        "export_cell.py.jinja",
        {
            "out_dir": str(out_dir),
            "model": settings.model,
            "metrics": settings.metrics,
            "reference": settings.reference,
            "entrypoint": checked.plan.entrypoint,
            "input_columns": None,
            "parameters": checked.plan.parameters,
            "learned": checked.plan.lifted_learned,
            "reference_rows": REFERENCE_ROWS,
            "notebook": nb.path.name,
            "evaluation": checked.plan.evaluation,
            "evaluation_file": evaluation.FILE,
            "target_column": evaluation.TARGET,
            "prediction_column": evaluation.PREDICTION,
            "proba_prefix": evaluation.PROBA,
            "seed": evaluation.SEED,
        },
    )
    export = nbformat.v4.new_code_cell(source, metadata={"tags": [EXPORT_TAG]})
    watch, done = (
        nbformat.v4.new_code_cell(
            render("reads_cell.py.jinja", reads.render_context(out_dir, part)),
            metadata={"tags": [reads.READS_TAG]},
        )
        for part in ("start", "done")
    )
    node.cells = [watch, *kept, export, done]
    node.nbformat, node.nbformat_minor = 4, max(5, node.get("nbformat_minor", 0))
    node.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3"})
    node.metadata["kernelspec"].setdefault("language", "python")
    return node


def _keep(executed: Path, keep: Path | None) -> Path:
    """Move the failed run's executed notebook to ``keep``; where it is now."""
    if keep is None or not executed.exists():
        return executed
    try:
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(executed, keep)
    except OSError:  # a full disk: the error names where it still is
        return executed
    return keep


def _error_cells(executed: Path) -> list[NotebookNode]:
    """The cells of the executed notebook that hold an error output; none if unreadable."""
    import nbformat

    try:
        ran = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError, AttributeError, TypeError):  # a full disk cut it short
        return []
    return [c for c in ran if any(o.get("output_type") == "error" for o in c.get("outputs", []))]


def _failure(nb: Notebook, executed: Path, exc: Exception, keep: Path | None) -> TrainingError:
    """Map papermill's failure back to the cell as the user's notebook numbers it."""
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc)).strip().splitlines()
    evalue = evalue[0] if evalue else ""
    cell = None
    # papermill puts an error banner cell first, so find the cell holding the error output
    for ran in _error_cells(executed)[:1]:
        if EXPORT_TAG in ran.metadata.get("tags", []):
            executed = _keep(executed, keep)
            if ename in _OS_ERRORS:
                evalue = f"writing its results failed ({ename}: {evalue})"
            return TrainingError(
                f"{nb.path.name}: the training run finished but {evalue.rstrip('.')}.",
                notebook=str(nb.path),
                executed=str(executed),
            )
        original = ran.metadata.get("nb2prod_cell")
        cell = next((c for c in nb.cells if c.index == original), None)
    executed = _keep(executed, keep)
    where = cell.where if cell else "a cell"
    return TrainingError(
        f"{nb.path.name}: {where} raised {ename}: {evalue} (executed notebook: {executed}).",
        notebook=str(nb.path),
        cell_index=cell.index if cell else None,
        cell_id=cell.id if cell else None,
        ename=ename,
        evalue=evalue,
        executed=str(executed),
    )


def run(
    checked: CheckResult, params: dict[str, Any], out_dir: Path, *, keep_failed: Path | None = None
) -> TrainingResult:
    """Execute the checked notebook into ``out_dir`` and collect what it exported.

    Args:
        checked: the notebook's check result.
        params: parameter values, by name.
        out_dir: where the executed notebook, the model and the exported data go.
        keep_failed: where a failed run's executed notebook is moved (its error names it
            there); None leaves it in ``out_dir``.

    Raises:
        ParameterError: a parameter is unknown.
        TrainingError: a cell failed or timed out.
    """
    nb = checked.notebook
    check_params(checked, params)  # before importing papermill: a typo is answered at once
    import nbformat
    from papermill.exceptions import PapermillExecutionError

    prepared = out_dir / "prepared.ipynb"
    executed = out_dir / EXECUTED
    log.info("training %s with papermill (parameters: %s)", nb.path.name, params or "defaults")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(prepare(nb, out_dir, checked), prepared)
        execute(prepared, executed, params, nb.path.parent, nb.settings.timeout, out_dir)
        return collect(out_dir)
    except PapermillExecutionError as exc:
        raise _failure(nb, executed, exc, keep_failed) from exc
    except Exception as exc:  # nbclient's CellTimeoutError, kernel death, a full disk, ...
        if type(exc).__name__ in ("CellTimeoutError", "TimeoutError"):
            executed = _keep(executed, keep_failed)
            raise TrainingError(
                f"{nb.path.name}: a cell ran longer than the {nb.settings.timeout} s timeout "
                f"(set nb2prod.timeout in the notebook metadata; executed notebook: {executed}).",
                notebook=str(nb.path),
                executed=str(executed),
            ) from exc
        if isinstance(exc, OSError):  # written by this process: papermill's executed notebook
            where = exc.filename or out_dir  # a failed write() names no file
            raise TrainingError(
                f"{nb.path.name}: training stopped, writing {'' if exc.filename else 'in '}"
                f"{where} failed: {exc.strerror or exc} "
                "(free some space, or build with another --out).",
                notebook=str(nb.path),
                path=str(where),
            ) from exc
        raise _failure(nb, executed, exc, keep_failed) from exc
    finally:
        prepared.unlink(missing_ok=True)
        shutil.rmtree(out_dir / ".kernel", ignore_errors=True)


def execute(
    prepared: Path, executed: Path, params: dict[str, Any], cwd: Path, timeout: int, out_dir: Path
) -> None:
    """Run ``prepared`` with papermill into ``executed``, in ``cwd``, as a build runs it.

    Also used by ``nb2prod suggest`` for its one run. Raises what papermill raises.
    """
    import papermill as pm

    from nb2prod.builder.kernel import manager_class

    pm.execute_notebook(
        str(prepared),
        str(executed),
        parameters=params,
        kernel_name="python3",
        language="python",
        cwd=str(cwd.resolve()),
        execution_timeout=timeout,
        progress_bar=False,
        log_output=False,
        # ipykernel warns on stderr that loopback TCP is unencrypted; keep build output clean
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        # nbclient's own: the kernel dies with the build, its key stays in out_dir
        kernel_manager_class=manager_class(out_dir / ".kernel"),
        shutdown_kernel="immediate",  # its results are written; nothing to wait for
    )


def collect(out_dir: Path) -> TrainingResult:
    """What the export cell of a finished training run left in ``out_dir``."""
    info = json.loads((out_dir / "export.json").read_text())
    return TrainingResult(
        directory=out_dir,
        executed=out_dir / EXECUTED,
        params=info["params"],
        metrics=info["metrics"],
        reference_rows=info["reference_rows"],
        has_proba=info["has_proba"],
        model_module=info["model_module"],
        classes=info["classes"],
        learned=info.get("learned", {}),
        evaluation=info.get("evaluation"),
    )


def train(
    notebook: str | Path, params: dict[str, Any] | None = None, *, out_dir: Path | None = None
) -> TrainingResult:
    """Check, then train ``notebook`` with papermill; results go to ``out_dir``.

    Raises:
        CheckFailed: static checks found errors.
        ParameterError: a parameter is unknown.
        TrainingError: a cell failed or timed out.
    """
    from nb2prod.lifecycle.tracking import track_train  # one MLflow run, never a failure

    def call() -> TrainingResult:
        checked = check(notebook, strict=True)
        target = out_dir or Path("bentos") / f"{checked.notebook.settings.name}-train"
        return run(checked, params or {}, target)

    return track_train(notebook, params or {}, call)
