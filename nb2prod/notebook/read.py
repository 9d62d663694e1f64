"""Read a notebook once, normalize it, and say which role each cell plays."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.errors import NotebookError

ROLES = ("parameters", "schema", "features", "train", "evaluate", "skip")
LIFTED_ROLES = ("schema", "features")
ROLE_PREFIX = "nb2prod:"
_COMMENT_ROLE = re.compile(r"^\s*#\|\s*nb2prod\s*:\s*(?P<role>[\w:-]*)\s*$")
COERCION = ("strict", "lenient")
_NAME_OK = re.compile(r"[^a-z0-9_.-]+")


def role_tag(role: str) -> str:
    """The metadata tag that carries ``role`` (papermill's own tag for parameters)."""
    return role if role == "parameters" else ROLE_PREFIX + role


def role_label(role: str | None) -> str:
    """How a role is shown to people: ``nb2prod:features``, ``parameters`` or ``untagged``."""
    return role_tag(role) if role else "untagged"


@dataclass(frozen=True)
class Cell:
    """One code cell, with its index and id as JupyterLab shows them."""

    index: int
    id: str
    source: str
    role: str | None
    unknown_roles: tuple[tuple[str, str], ...] = ()  # (as written, did-you-mean or "")
    conflicting_roles: tuple[str, ...] = ()
    role_line: int = 0  # 1 when the role comes from a ``#| nb2prod:`` first line

    @property
    def where(self) -> str:
        """``cell 5 (id 3f2a…, nb2prod:features)``: the name used in every message."""
        return f"cell {self.index} (id {self.id}, {role_label(self.role)})"


@dataclass(frozen=True)
class Settings:
    """Notebook-level settings from ``metadata.nb2prod``, with the documented defaults."""

    name: str
    entrypoint: str = "features"
    model: str = "model"
    reference: str = "X_train"
    metrics: str = "metrics"
    gates: dict[str, str] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    input_schema: str | None = None
    timeout: int = 600
    coercion: str = "strict"  # "lenient": let Pandera coerce 12.7 to 12, "12" to 12, true to 1


@dataclass(frozen=True)
class Notebook:
    """A normalized notebook: its code cells with roles, and its settings."""

    path: Path
    node: dict[str, Any]  # the notebook JSON, as read
    cells: tuple[Cell, ...]
    settings: Settings
    sha256: str

    def with_role(self, role: str) -> list[Cell]:
        return [c for c in self.cells if c.role == role]

    @property
    def lifted(self) -> list[Cell]:
        return [c for c in self.cells if c.role in LIFTED_ROLES]

    def cell_by_id(self, cell_id: str) -> Cell | None:
        return next((c for c in self.cells if c.id == cell_id), None)


def normalize_name(stem: str) -> str:
    """A BentoML-safe service name from a file stem: ``My Churn v2`` -> ``my_churn_v2``."""
    name = _NAME_OK.sub("_", stem.strip().lower()).strip("_.-")
    return name or "model"


def _roles_of(tags: list[str], source: str) -> tuple[list[str], list[str], int]:
    """Known and unknown roles named by a cell's tags and its ``#|`` first line."""
    known, unknown, role_line = [], [], 0
    written = [t[len(ROLE_PREFIX) :] for t in tags if t.startswith(ROLE_PREFIX)]
    if "parameters" in tags:
        written.append("parameters")
    first = source.lstrip("\n").split("\n", 1)[0]
    match = _COMMENT_ROLE.match(first)
    if match:
        written.append(match["role"].removeprefix(ROLE_PREFIX))
        role_line = 1
    for role in written:
        if role in ROLES:
            if role not in known:
                known.append(role)
        else:
            unknown.append(role)
    return known, unknown, role_line


def _suggest(role: str) -> str:
    close = difflib.get_close_matches(role, ROLES, n=1, cutoff=0.5)
    return close[0] if close else ""


def _settings(meta: dict[str, Any], path: Path) -> Settings:
    raw = dict(meta.get("nb2prod") or {})
    allowed = set(Settings.__dataclass_fields__)
    extra = sorted(set(raw) - allowed)
    if extra:
        raise NotebookError(
            f"{path}: notebook metadata nb2prod has unknown setting(s) {', '.join(extra)}; "
            f"known settings are {', '.join(sorted(allowed))}.",
            notebook=str(path),
        )
    raw["name"] = normalize_name(str(raw.get("name") or path.stem))
    if raw.get("coercion", "strict") not in COERCION:
        raise NotebookError(
            f"{path}: notebook setting nb2prod.coercion must be "
            f"{' or '.join(map(repr, COERCION))}, not {raw['coercion']!r}.",
            notebook=str(path),
        )
    for key in ("gates", "monitoring", "properties"):
        if not isinstance(raw.get(key, {}), dict):
            raise NotebookError(
                f"{path}: notebook setting nb2prod.{key} must be a mapping.", notebook=str(path)
            )
    return Settings(**raw)


def parse(text: str, path: Path) -> Notebook:
    """Parse notebook JSON text into a normalized :class:`Notebook`.

    Plain ``json`` on purpose: importing nbformat costs seconds (its JSON-schema validator),
    and ``check`` must stay well under two.
    """
    try:
        node = json.loads(text)
    except ValueError as exc:
        raise NotebookError(
            f"{path} is not a readable Jupyter notebook: {exc}.", notebook=str(path)
        ) from exc
    if not isinstance(node, dict) or not isinstance(node.get("cells"), list):
        raise NotebookError(
            f"{path} is not a Jupyter notebook (it has no cells list).", notebook=str(path)
        )
    if node.get("nbformat", 4) < 4:
        raise NotebookError(
            f"{path} uses notebook format {node.get('nbformat')}; open and save it in JupyterLab "
            "to upgrade it to format 4.",
            notebook=str(path),
        )
    node.setdefault("metadata", {})
    cells = []
    for index, raw in enumerate(node["cells"]):
        if raw.get("cell_type") != "code":
            continue
        source = raw.get("source", "")
        source = source if isinstance(source, str) else "".join(source)
        tags = list(raw.get("metadata", {}).get("tags", []))
        known, unknown, role_line = _roles_of(tags, source)
        cells.append(
            Cell(
                index=index,
                id=str(raw.get("id") or f"index-{index}"),
                source=source,
                role=known[0] if known else None,
                unknown_roles=tuple((u, _suggest(u)) for u in unknown),
                conflicting_roles=tuple(known[1:]),
                role_line=role_line if known or unknown else 0,
            )
        )
    return Notebook(
        path=path,
        node=node,
        cells=tuple(cells),
        settings=_settings(node["metadata"], path),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def read(path: str | Path) -> Notebook:
    """Read and normalize the notebook at ``path``.

    Raises:
        NotebookError: the file is missing or is not a notebook.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotebookError(
            f"Cannot read notebook {path}: {exc.strerror or exc}.", notebook=str(path)
        ) from exc
    return parse(text, path)
