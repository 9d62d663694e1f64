"""``suggest()``: plan, lift, run once, infer, compare; the :class:`Suggestion` it returns."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.errors import SuggestError
from nb2prod.notebook.read import parse_content, read
from nb2prod.suggest import rewrite
from nb2prod.suggest.accept import apply, diff
from nb2prod.suggest.existing import has_entrypoint
from nb2prod.suggest.plan import Note, Plan, make_plan
from nb2prod.suggest.statements import Lifter, feature_statements


@dataclass
class Suggestion:
    """The contract cells proposed for an imperative notebook, and their parity report."""

    notebook: str
    cells: list[dict[str, Any]]
    skipped: list[int]
    tags: list[dict[str, Any]]
    settings: dict[str, Any]
    notes: list[Note]
    parity: dict[str, Any]
    diff: str = ""
    node: dict[str, Any] = field(default_factory=dict, repr=False)  # the notebook as read

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``--json`` and the JupyterLab route; ``apply`` takes it back."""
        return {
            "notebook": self.notebook,
            "cells": self.cells,
            "skipped": self.skipped,
            "tags": self.tags,
            "settings": self.settings,
            "notes": [n.to_dict() for n in self.notes],
            "parity": self.parity,
            "diff": self.diff,
        }

    def applied(self) -> dict[str, Any]:
        """The notebook JSON with this suggestion applied."""
        return apply(self.node, self.to_dict())


def _texts(plan: Plan) -> tuple[dict[str, Any], Any, list[str], Any]:
    lifter = Lifter(plan)
    lifted = lifter.run(feature_statements(plan))
    if plan.load.cell.index in lifted.lifted_cells:
        cell = plan.load.cell
        raise SuggestError(
            f"{plan.notebook.path.name}: {cell.where} changes `{plan.train}` after loading "
            "it; move those lines to the next cell so nb2prod suggest can snapshot the raw "
            "frame between them.",
            notebook=str(plan.notebook.path),
            cell_index=cell.index,
            cell_id=cell.id,
        )
    xcell = rewrite.x_cell(plan, lifted.notes)
    body = rewrite.features_body(lifted, xcell.tail)
    used = rewrite.used_learned(lifted, body)
    texts = {
        "reference": rewrite.REFERENCE,
        "snapshot": rewrite.snapshot_cell(plan),
        "learned": rewrite.learned_cell(lifted, set(used)),
        "features": rewrite.features_cell(plan, lifted, body),
        "models": [rewrite.INPUT_MODEL, rewrite.OUTPUT_MODEL],
    }
    return texts, lifted, used, xcell


def _cells(plan: Plan, texts: dict[str, Any], schema: str, xcell: Any) -> list[dict[str, Any]]:
    load = plan.load.cell.index
    cells = [
        {"role": None, "source": texts["snapshot"], "insert_after_index": load},
        *(
            [{"role": None, "source": texts["learned"], "insert_after_index": load}]
            if texts["learned"]
            else []
        ),
        {"role": "schema", "source": schema, "insert_after_index": load},
        {"role": "features", "source": texts["features"], "insert_after_index": load},
    ]
    x = plan.x_cell.index
    if plan.x_cell.index == plan.fit.cell.index:
        cells.append({"role": None, "source": "\n".join(xcell.frames), "insert_after_index": x})
        cells.append({"role": "train", "source": "\n".join(xcell.rest), "insert_after_index": x})
    else:
        cells.append({"role": None, "source": "\n".join(xcell.ordered), "insert_after_index": x})
    return cells


def _tags(plan: Plan) -> list[dict[str, Any]]:
    tags = []
    if plan.x_cell.index != plan.fit.cell.index and plan.fit.cell.role != "train":
        tags.append({"cell_index": plan.fit.cell.index, "role": "train"})
    evaluate = plan.evaluate
    if evaluate and evaluate.role != "evaluate" and evaluate.index != plan.fit.cell.index:
        tags.append({"cell_index": evaluate.index, "role": "evaluate"})
    return tags


def suggest(
    path: str | Path, content: dict[str, Any] | None = None, *, work_dir: Path | None = None
) -> Suggestion:
    """Propose contract cells for the imperative notebook at ``path`` and check their parity.

    Args:
        path: the notebook; its folder is the run's working directory.
        content: the notebook JSON an editor holds, instead of the file's.
        work_dir: where the run's files go (a temporary folder, removed, when None).

    Raises:
        NotebookError: the notebook cannot be read.
        SuggestError: the cells cannot be lifted, or a cell failed in the run.
    """
    path = Path(path)
    nb = parse_content(content, path) if content is not None else read(path)
    node = content if content is not None else json.loads(path.read_text(encoding="utf-8"))
    if has_entrypoint(nb):
        raise SuggestError(
            f"{path.name}: a nb2prod:features cell already defines the entry point "
            f"`{nb.settings.entrypoint}`; nb2prod suggest --parity compares it with the "
            "original cells.",
            notebook=str(path),
        )
    plan = make_plan(nb)
    texts, lifted, used, xcell = _texts(plan)
    info = {
        "random_columns": lifted.random_columns,
        "stale_columns": lifted.stale_columns,
        "learned": used,
    }
    work = work_dir or Path(tempfile.mkdtemp(prefix="nb2prod-suggest-"))
    try:
        from nb2prod.suggest.run import execute

        result = execute(plan, texts, info, work)
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    from nb2prod.suggest.infer import render

    schema = render(result["inputs"], result["outputs"])
    settings: dict[str, Any] = {"reference": rewrite.REFERENCE}
    if used:
        settings["learned"] = used
    if plan.model != nb.settings.model:
        settings["model"] = plan.model
    skipped = sorted((lifted.lifted_cells | {plan.x_cell.index}) - {plan.load.cell.index})
    suggestion = Suggestion(
        notebook=str(path),
        cells=_cells(plan, texts, schema, xcell),
        skipped=skipped,
        tags=_tags(plan),
        settings=settings,
        notes=lifted.notes,
        parity=result["parity"],
        node=node,
    )
    suggestion.parity["learned"] = result["learned"]
    suggestion.diff = diff(node, suggestion.applied(), path.name)
    return suggestion
