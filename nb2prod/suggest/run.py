"""The one kernel run: the original notebook, a raw snapshot, X at the fit, then the
suggested cells on the snapshot, schema inference and the parity comparison."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import SuggestError

if TYPE_CHECKING:
    import pandas as pd

    from nb2prod.notebook.read import Notebook
    from nb2prod.suggest.plan import Plan

RESULT = "suggest.json"
RAW, X_FIT, FRAMES = "__nb2prod_raw", "__nb2prod_x", "__nb2prod_frames"
PARITY_END = "nb2prod-parity-end"  # the last cell of a parity run
FOREIGN_SKIP = "skip"  # Kale's skip tag: such cells never run in Kale either


def finish(
    out: str,
    raw: pd.DataFrame,
    original: pd.DataFrame,
    entrypoint: Any,
    info: dict[str, Any],
    infer: bool = True,
) -> None:
    """Kernel side: run the entry point on the raw frame, infer both schemas, compare."""
    import pandas as pd

    from nb2prod.suggest.infer import describe
    from nb2prod.suggest.parity import compare

    before = raw.copy(deep=True)
    suggested = entrypoint(raw.copy())
    if not isinstance(suggested, pd.DataFrame):
        raise TypeError(f"the features function returned a {type(suggested).__name__}")
    if not isinstance(original, pd.DataFrame):
        original = pd.DataFrame(original, index=raw.index[: len(original)])
    result = {
        "inputs": describe(raw) if infer else [],
        "outputs": describe(suggested) if infer else [],
        "parity": compare(original, suggested, before, info),
        "learned": {
            n: repr(globals_value) for n, globals_value in info.get("learned_values", {}).items()
        },
    }
    Path(out).write_text(json.dumps(result, default=str))


def code_cell(source: str, marker: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [marker]},
        "outputs": [],
        "source": source,
    }


def probed(plan: Plan, tail: list[dict[str, Any]], *, stop_at_fit: bool = False) -> dict:
    """The original notebook (skip cells out) with the probes in: a snapshot of the raw
    training frame (and of every frame then loaded) after its load, X right after the fit;
    then ``tail``. ``stop_at_fit`` leaves out the cells after the fit."""
    nb = plan.notebook
    node = copy.deepcopy(nb.node)
    skipped = {c.index for c in nb.cells if c.role == "skip"}
    cells = []
    for index, cell in enumerate(node["cells"]):
        cell.pop("id", None)
        tags = cell.get("metadata", {}).get("tags", [])
        if index in skipped or FOREIGN_SKIP in tags:
            continue
        cell.setdefault("metadata", {})["nb2prod_cell"] = index
        cells.append(cell)
        if index == plan.load.cell.index:
            snapshot = (
                f"{RAW} = {plan.train}.copy(deep=True)\n"
                f"{FRAMES} = {{n: v.copy(deep=True) for n, v in list(globals().items())"
                f" if isinstance(v, type({RAW})) and not n.startswith('_')}}"
            )
            cells.append(code_cell(snapshot, "nb2prod-snapshot"))
        if index == plan.fit.cell.index:
            cells.append(code_cell(f"{X_FIT} = {plan.x_fit}.copy()", "nb2prod-capture"))
            if stop_at_fit:
                break
    node["cells"] = cells + tail
    node["nbformat_minor"] = 4
    node["metadata"].setdefault("kernelspec", {"name": "python3", "display_name": "Python 3"})
    node["metadata"]["kernelspec"].setdefault("language", "python")
    return node


def run_notebook(plan: Plan, texts: dict[str, str], info: dict[str, Any], out: Path) -> dict:
    """The notebook the kernel runs: the original with the probes, then the suggestion."""
    nb = plan.notebook
    drop = f".drop(columns=[{plan.target!r}])" if plan.target else ""
    end = [
        f"{texts['reference']} = {RAW}{drop}.copy()",
        texts.get("learned") or "",
        "import pandera.pandas as pa",
        "from pandera.typing import DataFrame, Series",
        *(f"class {m}(pa.DataFrameModel):\n    pass" for m in texts["models"]),
        texts["features"],
        "from nb2prod.suggest.run import finish",
        f"{RAW}_learned = {{n: globals()[n] for n in {info['learned']!r}}}",
        (
            f"finish({str(out / RESULT)!r}, {texts['reference']}, {X_FIT}, "
            f"{nb.settings.entrypoint}, {{**{info!r}, 'learned_values': {RAW}_learned}})"
        ),
    ]
    return probed(plan, [code_cell("\n".join(end), "nb2prod-suggestion")])


def _failure(plan: Plan, executed: Path, exc: Exception, shown: Notebook | None) -> SuggestError:
    nb = shown or plan.notebook
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = (getattr(exc, "evalue", str(exc)) or "").strip().splitlines()
    evalue = evalue[0] if evalue else ""
    try:
        ran = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        ran = []
    failed = [c for c in ran if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    meta = failed[0].get("metadata", {}) if failed else {}
    tags = meta.get("tags", [])
    if "nb2prod-suggestion" in tags or PARITY_END in tags:
        what = (
            "the suggested cells"
            if "nb2prod-suggestion" in tags
            else (f"the entry point `{nb.settings.entrypoint}`")
        )
        return SuggestError(
            f"{nb.path.name}: the original cells ran, but {what} raised "
            f"{ename}: {evalue} on the training frame; nb2prod suggest cannot compare "
            f"them as they are (executed notebook: {executed}).",
            notebook=str(nb.path),
            ename=ename,
            executed=str(executed),
        )
    index = meta.get("nb2prod_cell")
    cell = next((c for c in nb.cells if c.index == index), None)
    where = cell.where if cell else "a cell"
    return SuggestError(
        f"{nb.path.name}: {where} raised {ename}: {evalue} when nb2prod suggest ran the "
        f"notebook (executed notebook: {executed}).",
        notebook=str(nb.path),
        cell_index=cell.index if cell else None,
        cell_id=cell.id if cell else None,
        ename=ename,
        executed=str(executed),
    )


def execute(plan: Plan, texts: dict[str, str], info: dict[str, Any], work: Path) -> dict:
    """Run the probed notebook once with papermill; the kernel's JSON result.

    Raises:
        SuggestError: a cell of the original or the suggested code failed.
    """
    return run(plan, run_notebook(plan, texts, info, work), work)


def run(plan: Plan, node: dict, work: Path, shown: Notebook | None = None) -> dict:
    """Run a probed notebook (:func:`probed`) once with papermill; the kernel's JSON result.

    Raises:
        SuggestError: a cell failed; named as ``shown`` (default: the plan's notebook) has it.
    """
    from nb2prod.builder.training import execute as papermill_run

    nb = plan.notebook
    work.mkdir(parents=True, exist_ok=True)
    prepared, executed = work / "suggest-prepared.ipynb", work / "suggest-executed.ipynb"
    prepared.write_text(json.dumps(node))
    try:
        papermill_run(prepared, executed, {}, nb.path.parent, nb.settings.timeout, work)
    except Exception as exc:  # papermill's execution error, a timeout, a dead kernel
        raise _failure(plan, executed, exc, shown) from exc
    finally:
        prepared.unlink(missing_ok=True)
        shutil.rmtree(work / ".kernel", ignore_errors=True)
    return json.loads((work / RESULT).read_text())
