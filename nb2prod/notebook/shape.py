"""The notebook JSON's shape: decoded as UTF-8, checked, and normalized once, on read.

As papermill does on read, every shape of notebook JSON is either turned into the one shape
later code expects (each cell a dict with its source as one string, metadata dicts, tags a
list of strings), or refused with a :class:`NotebookError` naming the file and the cell.
"""

from __future__ import annotations

import codecs
import re
import shlex
from pathlib import Path
from typing import Any

from nb2prod.errors import NotebookError

CELL_ID = re.compile(r"[a-zA-Z0-9-_]{1,64}")  # nbformat 4.5's id pattern and length; fullmatch
CELL_TYPES = ("code", "markdown", "raw")
MAX_DEPTH = 100  # JSON nesting; notebooks stay far below it, and deeper breaks copy.deepcopy
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16: FF FE 00 00 starts with FF FE
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def json_kind(value: Any) -> str:
    """A JSON value's type in words: ``a list``, ``a string``, ``null``."""
    if isinstance(value, bool):
        return "a boolean"
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), "null" if value is None else type(value).__name__)


def is_whole(value: Any) -> bool:
    """An int that is not a bool (JSON ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def refuse(path: Path, text: str, **fields: Any) -> NotebookError:
    """The error for a notebook that cannot be read: ``text`` follows the path."""
    return NotebookError(f"{path}{text}", notebook=str(path), **fields)


def _walk(value: Any, where: str, path: Path) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH`, and text that is not valid Unicode
    (a lone surrogate such as ``"\\ud800"``, which no file or terminal can take)."""
    todo = [(value, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            todo += [(k, depth) for k in value] + [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            todo += [(v, depth + 1) for v in value]
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise refuse(path, f": {where} holds text that is not valid Unicode.") from None
            continue
        else:
            continue
        if depth > MAX_DEPTH:
            raise refuse(path, f": {where} is nested more than {MAX_DEPTH} levels deep.")


def _format(node: dict[str, Any], path: Path) -> None:
    fmt = node.get("nbformat", 4)
    if "worksheets" in node or (is_whole(fmt) and fmt < 4):
        version = fmt if is_whole(fmt) and fmt < 4 else 3
        raise refuse(
            path,
            f" uses notebook format {version}, which nb2prod does not read; upgrade it to "
            f"format 4 with `jupyter nbconvert --to notebook --nbformat 4 --inplace "
            f"{shlex.quote(path.name)}`, or open and save it in JupyterLab.",
        )
    if not is_whole(fmt) or fmt > 4:
        raise refuse(path, f" has nbformat {fmt!r}; nb2prod reads notebook format 4 (the number).")
    if not is_whole(node.get("nbformat_minor", 0)):
        raise refuse(path, f" has nbformat_minor {node['nbformat_minor']!r}, not a number.")


def _normalize_cell(raw: Any, index: int, path: Path) -> None:
    """Check one cell's shape, and make its source one string (nbformat allows a list)."""
    if not isinstance(raw, dict):
        raise refuse(
            path, f": cell {index} is {json_kind(raw)}, not a cell object.", cell_index=index
        )
    cell_id = raw.get("id")
    if not (isinstance(cell_id, str) and CELL_ID.fullmatch(cell_id)):
        cell_id = None  # a bad id is check's finding; it is not repeated in messages
    where = f": cell {index}" + (f" (id {cell_id})" if cell_id else "")
    fields = {"cell_index": index, "cell_id": cell_id}
    kind = raw.get("cell_type")
    if kind not in CELL_TYPES:
        text = f"{where} has cell_type {kind!r}; the cell types are code, markdown and raw."
        raise refuse(path, text, **fields)
    source = raw.get("source", "")
    if isinstance(source, list):
        for number, line in enumerate(source):
            if not isinstance(line, str):
                text = f"{where}: line {number} of its source is {json_kind(line)}, not text."
                raise refuse(path, text, **fields)
        source = "".join(source)
    if not isinstance(source, str):
        raise refuse(path, f"{where}: its source is {json_kind(source)}, not text.", **fields)
    raw["source"] = source
    meta = raw.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise refuse(path, f"{where}: its metadata is {json_kind(meta)}, not an object.", **fields)
    tags = meta.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise refuse(path, f"{where}: its metadata.tags must be a list of strings.", **fields)
    outputs = raw.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise refuse(path, f"{where}: its outputs must be a list of objects.", **fields)


def normalize(node: Any, path: Path) -> dict[str, Any]:
    """Check the notebook JSON's shape and normalize it in place (see the module docstring).

    Raises:
        NotebookError: a shape nbformat would refuse, one sentence naming the cell.
    """
    if not isinstance(node, dict):
        raise refuse(path, f" is not a Jupyter notebook: its JSON is {json_kind(node)}.")
    _format(node, path)
    if not isinstance(node.get("cells"), list):
        raise refuse(path, " is not a Jupyter notebook (it has no cells list).")
    if not isinstance(node.setdefault("metadata", {}), dict):
        raise refuse(path, f": its metadata is {json_kind(node['metadata'])}, not an object.")
    for key, value in node.items():
        if key != "cells":
            _walk(value, f"its {key}", path)
    for index, cell in enumerate(node["cells"]):
        _walk(cell, f"cell {index}", path)
        _normalize_cell(cell, index, path)
    return node


def shown(path: Path) -> str:
    """The path for a message: a 5,000-character name is cut in the middle."""
    text = str(path)
    return text if len(text) <= 160 else f"{text[:80]}…{text[-60:]}"


def decode(data: bytes, path: Path) -> str:
    """UTF-8 only, as Jupyter reads notebooks: a UTF-16 file JupyterLab cannot open either."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise refuse(
                path,
                f" is saved as {encoding}, but notebooks are UTF-8 JSON (Jupyter reads no other "
                f"encoding): convert it with `iconv -f {encoding} -t UTF-8`.",
            )
    if data.startswith(codecs.BOM_UTF8):
        raise refuse(
            path,
            " starts with a byte-order mark, which Jupyter cannot read: "
            "save it as UTF-8 without one.",
        )
    if b"\x00" in data[:4]:
        raise refuse(
            path,
            " is saved as UTF-16 or UTF-32, but notebooks are UTF-8 JSON: convert it with iconv.",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(
            path,
            f" is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "notebooks are UTF-8 JSON: save it as UTF-8.",
        ) from None
