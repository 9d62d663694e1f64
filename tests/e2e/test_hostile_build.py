"""A real build of a notebook whose file name is hostile: it builds, and nothing in it runs.

The name tries every way out of the places it lands in the generated sources (docstrings,
comments, ``bentofile.yaml``); a payload that got out would ``touch`` ``$NB2X``.
The build trains, lifts, runs the gate (which imports every lifted module and the generated
tests), and runs ``bentoml build`` (which imports ``service.py``). The cell ids stay valid:
``check`` refuses bad ones, and ``tests/unit/test_hostile_names.py`` covers them in lift.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from nb2prod.builder.pipeline import build
from tests.support import CHECK

pytestmark = pytest.mark.e2e

# Out of a docstring (three quotes), then out of the comment or docstring line (a line break), into
# code; ": " and '"' for YAML, "{{" and "{%" for Jinja. Short enough for a BentoML name (63).
NAME = 'it\'s "my" a"""\n__import__("os").system("touch $NB2X")#: "x" {{ 1 }}{% if %}\\.ipynb'


def test_a_notebook_with_a_hostile_file_name_builds_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bentoml
    import yaml

    mark = tmp_path / "payload-ran"
    monkeypatch.setenv("NB2X", str(mark))
    notebook = tmp_path / "notebooks" / NAME
    notebook.parent.mkdir()
    shutil.copy(CHECK / "clean.ipynb", notebook)
    # When it is built, gate and all
    result = build(notebook, out_dir=tmp_path / "bentos")
    # Then it built, nothing of the name ran, and the bento names the notebook as it is called
    assert not mark.exists()
    src = result.build_dir / "src"
    bentofile = yaml.safe_load((src / "bentofile.yaml").read_text())
    assert bentofile["description"].startswith(f"{bentofile['name']}: built from {NAME} by ")
    bento = Path(bentoml.get(result.tag).path)
    assert NAME in (bento / "README.md").read_text()
    service = ast.parse((bento / "src" / "service.py").read_bytes())
    docs = [ast.get_docstring(c) or "" for c in service.body if isinstance(c, ast.ClassDef)]
    assert any(f"trained from {NAME};" in doc for doc in docs)
