"""Apply a suggestion to notebook JSON: new cells in, the originals kept as skip cells."""

from __future__ import annotations

import copy
import difflib
import json
import uuid
from typing import Any

from nb2prod.notebook.read import role_tag

ORIGINAL = "nb2prod_original"  # metadata of an original cell a suggestion replaced
SUGGESTED = "nb2prod_suggested"  # metadata of a cell a suggestion wrote: its role or "untagged"


def _has_ids(node: dict[str, Any]) -> bool:
    return (node.get("nbformat", 4), node.get("nbformat_minor", 0)) >= (4, 5)


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _new_cell(item: dict[str, Any], with_id: bool) -> dict[str, Any]:
    role = item.get("role")
    metadata: dict[str, Any] = {SUGGESTED: role or "untagged"}
    if role:
        metadata["tags"] = [role_tag(role)]
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": metadata,
        "outputs": [],
        "source": item["source"],
    }
    if with_id:
        cell["id"] = uuid.uuid4().hex[:8]
    return cell


def _set_role(cell: dict[str, Any], role: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    tags[:] = [t for t in tags if not t.startswith("nb2prod:") and t != "parameters"]
    tags.append(role_tag(role))


def apply(node: dict[str, Any], suggestion: dict[str, Any]) -> dict[str, Any]:
    """The notebook JSON with ``suggestion`` (``Suggestion.to_dict()``) applied; pure.

    The replaced cells stay, source unchanged, as ``nb2prod:skip`` cells marked
    ``metadata.nb2prod_original``; the new cells go after the cell they name; tags and
    settings are set. The nbformat version is kept (a 4.4 notebook gets no cell ids).
    """
    node = copy.deepcopy(node)
    with_id = _has_ids(node)
    for index in suggestion.get("skipped", []):
        cell = node["cells"][index]
        _set_role(cell, "skip")
        cell["metadata"][ORIGINAL] = True
    for tag in suggestion.get("tags", []):
        _set_role(node["cells"][tag["cell_index"]], tag["role"])
    after: dict[int, list[dict[str, Any]]] = {}
    for item in suggestion.get("cells", []):
        after.setdefault(item["insert_after_index"], []).append(_new_cell(item, with_id))
    cells = []
    for index, cell in enumerate(node["cells"]):
        cells.append(cell)
        cells += after.get(index, [])
    node["cells"] = cells
    settings = node.setdefault("metadata", {}).setdefault("nb2prod", {})
    settings.update(suggestion.get("settings", {}))
    return node


def percent_script(node: dict[str, Any]) -> str:
    """The notebook as a percent script (jupytext's light form), for a readable diff."""
    parts = []
    for cell in node.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        head = "# %%" if cell.get("cell_type") == "code" else "# %% [markdown]"
        if tags:
            head += " tags=" + json.dumps(tags)
        body = _source(cell)
        if cell.get("cell_type") != "code":
            body = "\n".join("# " + line if line else "#" for line in body.splitlines())
        parts.append(f"{head}\n{body.rstrip()}\n")
    return "\n".join(parts)


def diff(before: dict[str, Any], after: dict[str, Any], name: str) -> str:
    lines = difflib.unified_diff(
        percent_script(before).splitlines(keepends=True),
        percent_script(after).splitlines(keepends=True),
        fromfile=f"{name} (before)",
        tofile=f"{name} (suggested)",
    )
    return "".join(lines)
