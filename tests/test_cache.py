"""The build cache: an unchanged rebuild is a hit before training; any changed input is not."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nb2prod import cache
from nb2prod.notebook import read

ROOT = Path(__file__).resolve().parent.parent


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
    return cache.key(read(path), params or {}, gate=gate)


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


def test_the_key_changes_with_templates_source_and_version(notebook, monkeypatch) -> None:
    before = key_of(notebook)
    monkeypatch.setattr(cache, "templates_sha256", lambda: "other templates")
    assert key_of(notebook) != before
    monkeypatch.undo()
    monkeypatch.setattr(cache, "_nb2prod_source", lambda: "other source")
    assert key_of(notebook) != before
    monkeypatch.undo()
    monkeypatch.setattr(cache, "__version__", "9.9.9")
    assert key_of(notebook) != before


@pytest.mark.e2e
def test_an_unchanged_rebuild_is_a_hit_and_a_missing_bento_is_not(churn, monkeypatch) -> None:
    from nb2prod.build import build

    out = churn.result.build_dir.parent
    stages: list[str] = []
    again = build(
        ROOT / "notebooks" / "churn.ipynb",
        out_dir=out,
        progress=lambda stage, event: stages.append(f"{stage}:{event}"),
    )
    assert again.cached and again.tag == churn.tag
    assert again.metrics == churn.result.metrics and again.bento_path == churn.result.bento_path
    assert "train:done" in stages  # the same progress lines as a full build
    entry = out / cache.CACHE_DIR / f"{key_of(ROOT / 'notebooks' / 'churn.ipynb')}.json"
    assert entry.exists()

    # Anything the hit relies on that has gone means a real build, never a stale answer.
    monkeypatch.setattr(cache, "_in_store", lambda kind, tag: kind != "bento")
    assert cache.lookup(out, entry.stem) is None
    assert not entry.exists()


def test_a_hit_needs_its_build_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache.store, "exists", lambda kind, tag: True)
    build_dir = tmp_path / "churn-abc"
    (build_dir / "src").mkdir(parents=True)
    (build_dir / "src" / "nb2prod.json").write_text(json.dumps({"version": "abc"}))
    bento = tmp_path / "churn-abc.bento"
    bento.write_text("x")
    result = type(
        "R",
        (),
        {
            "tag": "churn:abc",
            "version": "abc",
            "metrics": {},
            "gates": [],
            "bento_path": bento,
            "build_dir": build_dir,
        },
    )
    cache.record(tmp_path, "k", result, "churn-model:abc")
    assert cache.lookup(tmp_path, "k")["tag"] == "churn:abc"
    shutil.rmtree(build_dir)
    assert cache.lookup(tmp_path, "k") is None
