"""``nb2prod tag``: import Kale and nbdev tags as nb2prod roles, keeping the foreign tags."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.errors import Nb2ProdError, TagError
from nb2prod.notebook.foreign import DIALECTS, TOOLS, detect, lead, read_tags
from nb2prod.notebook.read import Notebook, read, role_tag
from nb2prod.notebook.shape import shown

SOURCES = (*DIALECTS, "auto")


@dataclass(frozen=True)
class Mapped:
    """A foreign tag the import understood: the role it gave the cell, or None on purpose."""

    cell_index: int
    cell_id: str
    written: str
    role: str | None  # None: left untagged on purpose
    reason: str


@dataclass(frozen=True)
class Unmapped:
    """A foreign tag the import reported but did not map, and why."""

    cell_index: int
    cell_id: str
    written: str
    reason: str


@dataclass
class TagReport:
    """What ``nb2prod tag`` mapped and what it could not, for one notebook."""

    notebook: Path
    dialect: str  # "kale", "nbdev" or "kale+nbdev": the dialects applied
    mapped: list[Mapped] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    written: Path | None = None  # where the tagged notebook went; None: nothing written
    settings: dict[str, str] = field(default_factory=dict)  # notebook settings the roles need

    @property
    def tagged(self) -> list[Mapped]:
        """The tags that gave their cell a role (the cells this import changes)."""
        return [m for m in self.mapped if m.role]

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": str(self.notebook),
            "dialect": self.dialect,
            "mapped": [
                {**asdict(m), "tag": role_tag(m.role) if m.role else None} for m in self.mapped
            ],
            "unmapped": [asdict(u) for u in self.unmapped],
            "written": str(self.written) if self.written else None,
            "settings": dict(self.settings),
        }


def _dialects(nb: Notebook, source: str) -> tuple[str, ...]:
    if source not in SOURCES:
        raise TagError(
            f"unknown tag dialect {source!r} (--from): choose {', '.join(SOURCES)}.",
            notebook=str(nb.path),
        )
    present = {t.dialect for t in detect(nb)}
    chosen = tuple(d for d in DIALECTS if d in present and source in (d, "auto"))
    if not chosen:
        whose = " or ".join(TOOLS[d] for d in DIALECTS) if source == "auto" else TOOLS[source]
        other = sorted(present)
        hint = f"; it has {TOOLS[other[0]]} tags: use --from {other[0]}" if other else ""
        raise TagError(
            f"{nb.path.name} has no {whose} tags to import (no Kale cell tag such as skip, "
            f"step:<name>, pipeline-parameters, nor an nbdev `#| export` line){hint}.",
            notebook=str(nb.path),
        )
    return chosen


def plan(nb: Notebook, source: str = "auto") -> tuple[dict[int, str], TagReport]:
    """The role to add to each cell, by index, and the report; nothing is changed.

    Raises:
        TagError: ``source`` is not a dialect, or the notebook has none of its tags.
    """
    dialects = _dialects(nb, source)
    report = TagReport(nb.path, "+".join(dialects))
    read = read_tags(nb, dialects)
    roles: dict[int, str] = {}
    for cell in nb.cells:
        readings = read.get(cell.index, [])
        first = lead(readings) if readings else None
        for r in readings:
            where = (cell.index, cell.id, r.tag.written)
            if cell.role:
                report.unmapped.append(Unmapped(*where, f"already tagged {role_tag(cell.role)}"))
            elif r is first and r.kind == "role":
                roles[cell.index] = r.role
                if r.setting:
                    report.settings.setdefault(*r.setting)
                report.mapped.append(Mapped(*where, r.role, r.reason))
            elif first.kind == "role" and r.kind in ("role", "untagged"):
                because = f"the cell takes {role_tag(first.role)} from `{first.tag.written}`"
                report.unmapped.append(Unmapped(*where, f"{r.reason}; {because}"))
            elif r.kind == "untagged":
                report.mapped.append(Mapped(*where, None, r.reason))
            else:
                report.unmapped.append(Unmapped(*where, r.reason))
    return roles, report


def _apply(node: dict[str, Any], roles: dict[int, str], settings: dict[str, str]) -> dict[str, Any]:
    """A copy of the notebook JSON with each role's tag appended (and the settings the roles
    need, such as ``nb2prod.model``); every other byte kept."""
    out = copy.deepcopy(node)
    if settings:
        out["metadata"]["nb2prod"] = {**(out["metadata"].get("nb2prod") or {}), **settings}
    for index, role in roles.items():
        tags = out["cells"][index].setdefault("metadata", {}).setdefault("tags", [])
        if role_tag(role) not in tags:
            tags.append(role_tag(role))
    return out


def import_tags(nb: Notebook, source: str = "auto") -> tuple[dict[str, Any], TagReport]:
    """Map ``nb``'s Kale and/or nbdev tags to nb2prod roles, in ``metadata.tags``.

    Non-destructive: the foreign tags stay, so Kale and nbdev keep working, and a cell that
    already has an nb2prod role keeps it. Tagging twice gives the same notebook.

    Args:
        nb: the notebook, as read (its normalized JSON is copied, never changed).
        source: ``kale``, ``nbdev``, or ``auto`` (every dialect whose tags are present).

    Returns:
        The new notebook JSON (not written) and the report of what was mapped and why.

    Raises:
        TagError: ``source`` is unknown, or the notebook has none of its tags.
    """
    roles, report = plan(nb, source)
    return _apply(nb.node, roles, report.settings), report


def dumps(node: dict[str, Any]) -> str:
    """Notebook JSON as nbformat writes it (indent 1, UTF-8 as is, final newline), key order kept."""
    return json.dumps(node, indent=1, ensure_ascii=False) + "\n"


def write(target: Path, text: str, mode_from: Path, error: type[Nb2ProdError] = TagError) -> None:
    """Write notebook ``text`` to ``target`` atomically: a temporary file beside it, synced,
    then a rename; the file mode of ``target`` (or of ``mode_from``) is kept. ``nb2prod tag``
    and ``nb2prod suggest --apply`` both write through here.

    Raises:
        error: ``target`` is a folder or cannot be written (one sentence naming it).
    """
    try:
        folder = target.parent
        if target.is_dir():
            raise error(f"Cannot write {shown(target)}: it is a folder.", path=str(target))
        mode = stat.S_IMODE((target if target.exists() else mode_from).stat().st_mode)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise error(
            f"Cannot write {shown(target)}: {exc.strerror or exc}.", path=str(target)
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise error(
            f"Cannot write {shown(target)}: {exc.strerror or exc}.", path=str(target)
        ) from exc


def tag_file(
    path: str | Path,
    source: str = "auto",
    *,
    out: str | Path | None = None,
    in_place: bool = False,
) -> TagReport:
    """Import the foreign tags of the notebook at ``path``; write it when asked.

    With neither ``out`` nor ``in_place`` nothing is written (a dry run). The file keeps its
    nbformat version (a 4.4 notebook stays 4.4, with no cell ids added) and everything but the
    added tags.

    Raises:
        NotebookError: the notebook cannot be read.
        TagError: both ``out`` and ``in_place``; an unknown ``source``; no tags to import; a
            target that is not an ``.ipynb`` file, or cannot be written.
    """
    path = Path(path)
    if out is not None and in_place:
        raise TagError(
            "Pass --out PATH or --in-place, not both: --out writes a tagged copy, --in-place "
            f"tags {shown(path)} itself.",
            notebook=str(path),
        )
    target = path if in_place else Path(out) if out is not None else None
    for named in (path, target) if target else ():
        if named.suffix != ".ipynb":
            raise TagError(
                f"nb2prod tag writes .ipynb notebooks, and {shown(named)} is not one (convert a "
                "percent script with `jupytext --to ipynb`).",
                notebook=str(path),
            )
    nb = read(path)
    roles, report = plan(nb, source)
    if target is None or (in_place and not roles):
        return report  # a dry run, or nothing to change: the file stays as it is
    try:
        text = path.read_bytes().decode("utf-8")  # as written, not normalized
    except (OSError, ValueError):
        text = ""
    if hashlib.sha256(text.encode()).hexdigest() != nb.sha256:
        raise TagError(f"{shown(path)} changed while it was being tagged; run again.")
    raw = json.loads(text)
    write(target, dumps(_apply(raw, roles, report.settings)), mode_from=path)
    report.written = target
    return report
