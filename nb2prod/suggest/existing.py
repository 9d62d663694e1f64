"""Feature parity for a notebook that already has its entry point (hand-written, or an
accepted suggestion): the original imperative cells against ``features`` on the raw frame."""

from __future__ import annotations

import ast
import copy
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import SuggestError
from nb2prod.notebook.read import parse_content, read, role_tag
from nb2prod.notebook.scope import ParsedCell
from nb2prod.suggest import run
from nb2prod.suggest.accept import ORIGINAL, SUGGESTED
from nb2prod.suggest.plan import Note, Plan, make_plan
from nb2prod.suggest.statements import Lifter, feature_statements

if TYPE_CHECKING:
    from nb2prod.notebook.read import Cell, Notebook

PARITY = "nb2prod-parity"  # a cell of the notebook's own path, run after the originals
NEW_ROLES = ("schema", "features")


@dataclass
class ParityReport:
    """The per-column comparison of the original cells' X with the entry point's output."""

    notebook: str
    original_cells: list[int]
    parity: dict[str, Any]
    notes: list[Note] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "original_cells": self.original_cells,
            "parity": self.parity,
            "notes": [n.to_dict() for n in self.notes],
        }


def has_entrypoint(nb: Notebook) -> bool:
    """Whether a nb2prod:features cell defines the entry point (``def features(df)``)."""
    for cell in nb.with_role("features"):
        tree = ParsedCell(cell).tree
        body = tree.body if tree is not None else []
        if any(isinstance(n, ast.FunctionDef) and n.name == nb.settings.entrypoint for n in body):
            return True
    return False


def original_cells(nb: Notebook, chosen: list[int] | None) -> list[int]:
    """The original imperative cells: ``chosen`` (``--original``), else the marked ones.

    Raises:
        SuggestError: none is marked and none chosen, or a chosen index is no such cell.
    """
    name = nb.path.name
    if chosen is None:
        marked = [c.index for c in nb.cells if nb.node["cells"][c.index]["metadata"].get(ORIGINAL)]
        if not marked:
            raise SuggestError(
                f"{name}: no cell is marked metadata.{ORIGINAL} (as nb2prod suggest --apply "
                "marks the cells it replaced); name the original imperative cells with "
                "--original 4,5,6.",
                notebook=str(nb.path),
            )
        return marked
    by_index = {c.index: c for c in nb.cells}
    for index in chosen:
        cell = by_index.get(index)
        if cell is None or cell.role in NEW_ROLES:
            what = cell.where if cell else f"cell {index}"
            why = "is a contract cell" if cell else "is not a code cell of the notebook"
            raise SuggestError(
                f"{name}: --original names {what}, which {why}; name the cells that computed "
                "X before the entry point existed.",
                notebook=str(nb.path),
                cell_index=index,
            )
    return sorted(set(chosen))


def _new_only(nb: Notebook, cell: Cell) -> bool:
    """A cell only the notebook's own path runs: suggested, contract, or calling the entry."""
    if nb.node["cells"][cell.index]["metadata"].get(SUGGESTED) or cell.role in NEW_ROLES:
        return True
    parsed = ParsedCell(cell)
    return parsed.tree is not None and parsed.first_use(nb.settings.entrypoint) is not None


def original_view(nb: Notebook, originals: list[int]) -> tuple[Notebook, set[int]]:
    """The notebook as it was before the rewrite, same cell indices: the originals run
    untagged, the cells only the new path needs are skip cells. Also: those cells."""
    node = copy.deepcopy(nb.node)
    new_only = set()
    for cell in nb.cells:
        tags = node["cells"][cell.index]["metadata"].setdefault("tags", [])
        if cell.index in originals:
            tags[:] = [t for t in tags if t not in (role_tag("skip"), run.FOREIGN_SKIP)]
        elif cell.role != "skip" and _new_only(nb, cell):
            tags[:] = [t for t in tags if not t.startswith("nb2prod:")] + [role_tag("skip")]
            new_only.add(cell.index)
    return parse_content(node, nb.path), new_only


def own_path(nb: Notebook, plan: Plan, originals: list[int], new_only: set[int]) -> list[dict]:
    """The cells of the notebook's own path up to its train cell, to run after the originals
    on the restored frames: after the load, or needed by the new path only."""
    train = [c.index for c in nb.with_role("train")]
    stop = min(train) if train else plan.fit.cell.index
    cells = [
        run.code_cell(
            f"globals().update({{n: v.copy(deep=True) for n, v in {run.FRAMES}.items()}})", PARITY
        )
    ]
    for cell in nb.cells:
        raw = copy.deepcopy(nb.node["cells"][cell.index])
        tags = raw.get("metadata", {}).get("tags", [])
        built = cell.role != "skip" and run.FOREIGN_SKIP not in tags
        after_load = cell.index > plan.load.cell.index or cell.index in new_only
        if cell.index < stop and built and after_load and cell.index not in originals:
            raw.pop("id", None)
            raw["metadata"]["nb2prod_cell"] = cell.index
            raw["metadata"]["tags"] = [*tags, PARITY]
            cells.append(raw)
    return cells


def _reasons(plan: Plan) -> tuple[dict[str, Any], list[Note]]:
    """What the original cells did that explains a difference: random draws, the rebinding bug."""
    try:
        lifted = Lifter(plan).run(feature_statements(plan))
    except SuggestError as exc:
        why = f"the original cells cannot be read for reasons, so every difference is unexplained: {exc}"
        return {}, [Note("cannot", None, None, None, why)]
    notes = [n for n in lifted.notes if n.kind in ("deliberate", "bug")]
    return {"random_columns": lifted.random_columns, "stale_columns": lifted.stale_columns}, notes


def check_parity(
    path: str | Path,
    content: dict[str, Any] | None = None,
    *,
    original: list[int] | None = None,
    work_dir: Path | None = None,
) -> ParityReport:
    """Compare the notebook's own entry point with its original imperative cells, in one run.

    The originals (``original``, else the cells marked ``metadata.nb2prod_original``) run in
    place of the cells only the new path needs, up to the fit, where X is captured. The frames
    are then restored to their raw snapshot, the notebook's own cells run up to its train
    cell, and the entry point's output on the reference frame is compared column by column.

    Raises:
        NotebookError: the notebook cannot be read.
        SuggestError: it has no entry point or no originals, or a cell failed in the run.
    """
    path = Path(path)
    nb = parse_content(content, path) if content is not None else read(path)
    entry, settings = nb.settings.entrypoint, nb.settings
    if not has_entrypoint(nb):
        raise SuggestError(
            f"{path.name}: no nb2prod:features cell defines the entry point `{entry}`, so there "
            "is nothing to compare; nb2prod suggest without --parity proposes one.",
            notebook=str(path),
        )
    originals = original_cells(nb, original)
    view, new_only = original_view(nb, originals)
    plan = make_plan(view)
    info, notes = _reasons(plan)
    work = work_dir or Path(tempfile.mkdtemp(prefix="nb2prod-parity-"))
    end = "\n".join(
        [
            "from nb2prod.suggest.run import finish",
            f"{run.RAW}_learned = {{n: globals().get(n) for n in {list(settings.learned)!r}}}",
            (
                f"finish({str(work / run.RESULT)!r}, {settings.reference}, {run.X_FIT}, {entry}, "
                f"{{**{info!r}, 'learned_values': {run.RAW}_learned}}, infer=False)"
            ),
        ]
    )
    tail = [*own_path(nb, plan, originals, new_only), run.code_cell(end, run.PARITY_END)]
    try:
        result = run.run(plan, run.probed(plan, tail, stop_at_fit=True), work, shown=nb)
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    parity = result["parity"]
    parity["learned"] = result["learned"]
    return ParityReport(str(path), originals, parity, notes)
