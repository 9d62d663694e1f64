"""Fuzzing ``check`` with mutated notebooks: a result or a NotebookError, never anything else.

Each example takes a real fixture and breaks it: a wrong type at some level, a deleted or
extra key, deep nesting, odd strings (lone surrogates, NUL, newlines in ids, role-like text),
odd settings; or, for files, odd bytes and encodings. Derandomized and bounded, so the suite
sees the same examples every run, in a few seconds.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nb2prod.errors import NotebookError
from nb2prod.notebook.analysis import CheckResult
from nb2prod.notebook.check import check
from nb2prod.notebook.read import Settings
from tests.support import CHECK

BASE = json.loads((CHECK / "clean.ipynb").read_text())
FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD = st.sampled_from(
    [
        "",
        "\ud800",
        "a\x00b",
        "id\nimport os",
        '"""',
        "x" * 65,
        "nb2prod:features",
        "parameters",
        "nb2prod:evalute",
        "#| nb2prod: features\nimport os",
        "def features(df):\n    return df",
        "x = " + "+".join(["1"] * 5000),
        ">= banana",
        "4",
        "%%bash\nls",
    ]
)
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | ODD
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.integers(10**20, 10**30) | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


JSON = VALUES | st.integers(1, 2000).map(_deep)  # deeper than json and copy can take


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


@st.composite
def mutated(draw: st.DrawFn, deep: bool = True) -> dict[str, Any]:
    """The fixture with one to three mutations, each at a random place in the tree."""
    nb = copy.deepcopy(BASE)
    values = JSON if deep else VALUES
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["anywhere", "setting", "cell"]))
        if kind == "setting":  # the settings, where most type errors hide
            key = draw(st.sampled_from([*Settings.__dataclass_fields__, "unknown"]))
            meta = nb.get("metadata")
            settings_ = meta.setdefault("nb2prod", {}) if isinstance(meta, dict) else None
            if isinstance(settings_, dict):
                settings_[key] = draw(values)
            continue
        parent: Any = nb
        if kind == "cell" and isinstance(nb.get("cells"), list) and nb["cells"]:
            parent = nb["cells"][draw(st.integers(0, len(nb["cells"]) - 1))]
        while True:  # walk down a random path, then act on one child of where it stopped
            keys = _children(parent)
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if not _children(parent[key]) or draw(st.booleans()):
                break
            parent = parent[key]
        if not keys:
            continue
        action = draw(st.sampled_from(["replace", "delete", "wrap", "add"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "wrap":
            parent[key] = [parent[key]]
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = draw(values)
        else:
            parent.insert(draw(st.integers(0, len(parent))), draw(values))
    return nb


def _holds(run) -> None:
    """``check`` returns a result the route can send as JSON, or raises NotebookError."""
    try:
        result = run()
    except NotebookError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        json.dumps(exc.to_dict())
        return
    assert isinstance(result, CheckResult)
    json.dumps(result.to_dict())


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@FUZZ
@given(nb=mutated())
def test_check_of_mutated_editor_content_never_crashes(nb: dict[str, Any]) -> None:
    _holds(lambda: check(Path("fuzz.ipynb"), nb))


@FUZZ
@given(
    nb=mutated(deep=False),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1"]),
    cut=st.none() | st.integers(0, 3000),
    junk=st.binary(max_size=8),
)
def test_check_of_mutated_files_never_crashes(
    folder: Path, nb: dict[str, Any], encoding: str, cut: int | None, junk: bytes
) -> None:
    text = json.dumps(nb, indent=1)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # a lone surrogate, or a character latin-1 lacks
        data = text.encode("utf-8", "surrogatepass")
    if cut is not None:
        data = data[:cut] + junk + data[cut:]
    path = folder / "fuzz.ipynb"
    path.write_bytes(data)
    _holds(lambda: check(path))
