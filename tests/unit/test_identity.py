"""The cache key: known before training, the same for unchanged inputs, new for any change."""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

import pytest

from nb2prod.builder import identity
from nb2prod.notebook.read import read
from tests.support import ROOT


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """A copy of the churn example that reads a data file, in a directory of its own."""
    path = tmp_path / "churn.ipynb"
    nb = json.loads((ROOT / "notebooks" / "churn.ipynb").read_text())
    nb["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "extra = open('data.csv').read()",
        }
    )
    path.write_text(json.dumps(nb))
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    return path


def key_of(path: Path, params: dict[str, Any] | None = None, gate: bool = True) -> str:
    return identity.cache_key(read(path), params or {}, gate=gate)


def test_the_key_is_stable_for_unchanged_inputs(notebook) -> None:
    assert key_of(notebook) == key_of(notebook)


def test_the_key_changes_with_the_notebook(notebook) -> None:
    before = key_of(notebook)
    nb = json.loads(notebook.read_text())
    nb["cells"][1]["source"] = nb["cells"][1]["source"].replace("seed = 7", "seed = 8")
    notebook.write_text(json.dumps(nb))
    assert key_of(notebook) != before


def test_the_key_changes_with_parameters_and_the_gate(notebook) -> None:
    base = key_of(notebook)
    assert key_of(notebook, {"n_estimators": 300}) != base
    assert key_of(notebook, {"n_estimators": 300}) != key_of(notebook, {"n_estimators": 301})
    assert key_of(notebook, gate=False) != base


def test_the_key_changes_with_a_data_file_the_notebook_names(notebook) -> None:
    before = key_of(notebook)
    (notebook.parent / "data.csv").write_text("a,b\n1,3\n")
    assert key_of(notebook) != before


def test_the_key_changes_with_package_versions(notebook, monkeypatch) -> None:
    before = key_of(notebook)
    real = md.version
    monkeypatch.setattr(
        md, "version", lambda d: "999.0" if d.lower() == "scikit-learn" else real(d)
    )
    assert key_of(notebook) != before


def test_the_key_changes_with_generator_source_and_version(notebook, monkeypatch) -> None:
    before = key_of(notebook)
    monkeypatch.setattr(identity, "generator_sha256", lambda: "other templates")
    assert key_of(notebook) != before
    monkeypatch.undo()
    monkeypatch.setattr(identity, "nb2prod_source_sha256", lambda: "other source")
    assert key_of(notebook) != before
    monkeypatch.undo()
    monkeypatch.setattr(identity, "__version__", "9.9.9")
    assert key_of(notebook) != before


def test_the_generator_hash_covers_templates_and_runtime_modules(monkeypatch, tmp_path) -> None:
    before = identity.generator_sha256()
    runtime = tmp_path / "serving"
    runtime.mkdir()
    for path in identity.SERVING_DIR.glob("*.py"):
        (runtime / path.name).write_text(path.read_text())
    monkeypatch.setattr(identity, "SERVING_DIR", runtime)
    assert identity.generator_sha256() == before  # the same files, elsewhere
    (runtime / "sink.py").write_text((runtime / "sink.py").read_text() + "\n# changed\n")
    assert identity.generator_sha256() != before


def test_the_source_hash_covers_every_package() -> None:
    files = sorted(
        p.relative_to(identity.PACKAGE_DIR).as_posix() for p in identity.PACKAGE_DIR.rglob("*.py")
    )
    assert {"builder/pipeline.py", "serving/runtime.py", "lab/routes.py"} <= set(files)
