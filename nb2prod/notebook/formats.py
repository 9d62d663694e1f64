"""Notebooks kept as text: a jupytext percent script (``.py``) read into the notebook JSON.

Many people keep notebooks in git as percent scripts: cells start at ``# %%`` lines, with
their metadata on the marker (``# %% tags=["nb2prod:features"]``) or nb2prod's role as the
first line (``#| nb2prod: features``). jupytext reads them, as JupyterLab does with its
jupytext extension; the rest of nb2prod then sees an ordinary notebook. The notebook's
``sha256`` stays that of the file's bytes (``read.read``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from nb2prod.errors import NotebookError
from nb2prod.notebook.shape import shown

SCRIPT_SUFFIXES = (".py",)  # read as percent scripts (``.pct.py`` included)
# Text notebooks jupytext writes that nb2prod does not read: one sentence says how to convert.
OTHER_TEXT = (".md", ".markdown", ".qmd", ".rmd", ".myst", ".mnb")
# A cell marker as jupytext's percent reader takes it: ``# %%``, ``#%%``, ``# %% [markdown]``.
_MARKER = re.compile(r"^\s*#\s*%%(\s|$)", re.MULTILINE)


def is_text(path: Path) -> bool:
    """Whether ``path`` names a notebook kept as text (by its suffix), not ``.ipynb`` JSON."""
    return path.suffix.lower() in SCRIPT_SUFFIXES + OTHER_TEXT


def to_json(data: bytes, path: Path) -> str:
    """The notebook JSON text of the text notebook ``data`` (the bytes of ``path``).

    Cells carry no ids (format 4.4, as an old ``.ipynb``): jupytext would invent new ones on
    every read, and a cell's id is in every message and in the lifted code's markers.

    Raises:
        NotebookError: not UTF-8, not a percent script, a text format nb2prod does not read,
            or jupytext cannot read it.
    """
    where = shown(path)
    convert = f"`jupytext --to ipynb {shlex.quote(path.name)}`"
    if path.suffix.lower() not in SCRIPT_SUFFIXES:
        raise NotebookError(
            f"{where} is a {path.suffix} file; nb2prod reads .ipynb notebooks and percent-format "
            f".py scripts: convert it with {convert}.",
            notebook=str(path),
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotebookError(
            f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8.",
            notebook=str(path),
        ) from None
    if not _MARKER.search(text):
        raise NotebookError(
            f"{where} is a Python file with no `# %%` cell markers, so it is not a notebook: "
            "start each cell with a `# %%` line (jupytext's percent format), or give nb2prod "
            "the .ipynb.",
            notebook=str(path),
        )
    node = _read_percent(text, path)
    node["nbformat_minor"] = min(node.get("nbformat_minor", 4), 4)
    for cell in node.get("cells", []):
        cell.pop("id", None)
    return json.dumps(node)


def _import_jupytext() -> Any:
    """``import jupytext``, without the 1.3 s of ``rfc3987_syntax`` when nothing loaded it yet.

    jupytext imports nbformat, which imports jsonschema, which imports rfc3987-syntax (an
    optional extra that jupyter-events installs) only to check the ``iri`` string format, and
    that builds a grammar at import. No schema nbformat validates uses that format. Kept out
    while jsonschema is first imported, so `check` on a script stays under two seconds; in a
    process that already has jsonschema (the Jupyter server) nothing changes.
    """
    import sys

    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        import jupytext

        return jupytext
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import: ImportError
    try:
        import jupytext
    finally:
        del sys.modules["rfc3987_syntax"]  # importable again for anyone who asks later
    return jupytext


def _read_percent(text: str, path: Path) -> dict[str, Any]:
    try:
        jupytext = _import_jupytext()  # about a second: nbformat, jsonschema, jupytext
    except ImportError as exc:
        raise NotebookError(
            f"Reading {shown(path)} as a notebook needs jupytext: pip install 'jupytext>=1.16'.",
            notebook=str(path),
        ) from exc
    try:
        notebook = jupytext.reads(text, fmt="py:percent")
    except Exception as exc:  # jupytext's own errors have no common base
        raise NotebookError(
            f"{shown(path)} is not a percent script jupytext can read ({type(exc).__name__}: "
            f"{exc}).",
            notebook=str(path),
        ) from exc
    return json.loads(json.dumps(notebook))  # plain dicts and lists, as json.loads gives
