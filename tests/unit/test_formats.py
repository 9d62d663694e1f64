"""Percent scripts read as notebooks (real jupytext), and text that is not one refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nb2prod.errors import NotebookError
from nb2prod.notebook.check import check
from nb2prod.notebook.read import read
from tests.support import FIXTURES

LEMONADE = FIXTURES / "percent" / "lemonade.py"


def test_a_percent_script_reads_with_roles_written_either_way() -> None:
    nb = read(LEMONADE)
    roles = {c.role: c for c in nb.cells if c.role}
    assert set(roles) == {"parameters", "skip", "schema", "features", "train", "evaluate"}
    # `# %% tags=[...]` metadata and `#| nb2prod:` first lines
    assert roles["features"].role_line == 0 and roles["schema"].role_line == 1
    assert roles["features"].source.startswith("def features(df: DataFrame[Day])")
    # the YAML header's metadata holds the notebook settings
    assert nb.settings.gates == {"r2": ">= 0.5"} and nb.settings.name == "lemonade"
    assert nb.node["cells"][0]["cell_type"] == "markdown"


def test_cells_keep_the_same_ids_and_the_hash_is_the_files() -> None:
    first, second = read(LEMONADE), read(LEMONADE)
    # jupytext invents ids on every read: nb2prod drops them, so cells are named by index
    assert [c.id for c in first.cells] == [f"index-{c.index}" for c in first.cells]
    assert first.node == second.node
    assert first.sha256 == hashlib.sha256(LEMONADE.read_bytes()).hexdigest()


def test_a_percent_script_passes_check_and_prepares_a_valid_notebook(tmp_path: Path) -> None:
    import nbformat

    from nb2prod.builder.training import prepare

    checked = check(LEMONADE, strict=True)
    assert not [f for f in checked.findings if f.severity == "error"]
    prepared = prepare(checked.notebook, tmp_path, checked)
    nbformat.validate(prepared)  # papermill gets an .ipynb
    sources = [c.source for c in prepared.cells]
    assert not any("describe(include" in s for s in sources)  # the skip cell is out


def test_a_python_file_without_cell_markers_is_one_sentence(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import pandas as pd\n\nframe = pd.read_csv('x.csv')\n")
    with pytest.raises(NotebookError) as info:
        read(script)
    assert str(info.value) == (
        f"{script} is a Python file with no `# %%` cell markers, so it is not a notebook: "
        "start each cell with a `# %%` line (jupytext's percent format), or give nb2prod the "
        ".ipynb."
    )


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.md", b"# Notes\n", "is a .md file; nb2prod reads .ipynb notebooks and"),
        ("bad.py", b"# %%\nx = '\xff'\n", "is not UTF-8 text (byte 0xff at offset 10)"),
    ],
)
def test_other_text_is_refused_with_one_sentence(
    name: str, data: bytes, message: str, tmp_path: Path
) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(NotebookError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(tmp_path / name)


def test_a_tiny_script_without_a_header_is_a_notebook(tmp_path: Path) -> None:
    script = tmp_path / "tiny.pct.py"
    script.write_text("#%%\n#| nb2prod: parameters\nseed = 1\n\n# %% [markdown]\n# text\n")
    nb = read(script)
    assert [(c.index, c.role) for c in nb.cells] == [(0, "parameters")]
    assert [c["cell_type"] for c in nb.node["cells"]] == ["code", "markdown"]


def test_reading_a_script_leaves_every_package_importable() -> None:
    import subprocess
    import sys

    # a fresh interpreter: jupytext is imported with rfc3987_syntax held back (formats.py)
    code = (
        "import sys; from nb2prod.notebook.read import read; "
        f"nb = read({str(LEMONADE)!r}); assert 'jupytext' in sys.modules; "
        "import rfc3987_syntax, jsonschema; print(len(nb.cells))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(read(LEMONADE).cells))
