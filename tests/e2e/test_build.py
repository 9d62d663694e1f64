"""``build`` end to end on small fixtures: bento in the store, or nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nb2prod.builder import cache, identity
from nb2prod.builder.pipeline import build
from nb2prod.errors import CheckFailed, GateFailed, TrainingError

pytestmark = pytest.mark.e2e
from nb2prod.notebook.read import read
from tests.support import CHECK, NOTEBOOKS


def _store_tags() -> set[str]:
    import bentoml

    return {str(b.tag) for b in bentoml.list()} | {str(m.tag) for m in bentoml.models.list()}


def _leftovers(out: Path) -> list[str]:
    """What a build left in ``out``, besides the build cache's index."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name != ".nb2prod-cache")


def test_parameter_used_by_features_is_lifted_as_a_constant(tmp_path: Path) -> None:
    result = build(CHECK / "parameter_lifted.ipynb", {"threshold": 0.2}, out_dir=tmp_path)
    features = (result.build_dir / "src" / "lifted" / "features.py").read_text()
    assert "threshold = 0.2\n" in features
    assert "# %% parameter_lifted.ipynb · cell 4 (parameter_lifted-4)" in features
    import json

    manifest = json.loads((result.build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["lifted_parameters"] == {"threshold": "0.2"}
    assert manifest["parameters"]["seed"] == "0"
    assert result.bento_path.exists() and result.tag in _store_tags()
    assert _leftovers(tmp_path) == sorted([result.bento_path.name, result.build_dir.name])


def test_unchanged_rebuild_has_the_same_version(tmp_path: Path) -> None:
    first = build(CHECK / "clean.ipynb", out_dir=tmp_path)
    second = build(CHECK / "clean.ipynb", out_dir=tmp_path)
    assert second.tag == first.tag and second.cached
    third = build(CHECK / "clean.ipynb", {"seed": 1}, out_dir=tmp_path)
    assert third.version != first.version


def test_training_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    before = _store_tags()
    with pytest.raises(
        TrainingError, match=r"cell 5 \(id train_raises-5, nb2prod:train\) raised"
    ) as info:
        build(CHECK / "train_raises.ipynb", out_dir=tmp_path)
    assert _store_tags() == before
    # only the executed notebook is kept, for the user to open at the failing cell
    assert _leftovers(tmp_path) == ["train_raises.failed.ipynb"]
    assert str(tmp_path / "train_raises.failed.ipynb") in str(info.value)


def test_failed_gate_leaves_nothing_behind(tmp_path: Path) -> None:
    before = _store_tags()
    with pytest.raises(GateFailed, match=r"accuracy = .*, which is not >= 0.999"):
        build(CHECK / "gate_fails.ipynb", out_dir=tmp_path)
    assert _store_tags() == before and _leftovers(tmp_path) == []


def test_check_errors_stop_the_build_before_training(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="uses `scale`"):
        build(CHECK / "closure_untagged_name.ipynb", out_dir=tmp_path)
    assert _leftovers(tmp_path) == []


def test_store_stays_in_the_temporary_home() -> None:
    assert "nb2prod-bentoml-" in os.environ["BENTOML_HOME"]


def test_bentoml_build_uses_the_store_the_model_was_saved_to(monkeypatch, tmp_path: Path) -> None:
    from nb2prod.bento import store

    # Given bentoml already in use (it read BENTOML_HOME once), then the variable changing,
    # as it can in a long-lived Jupyter server
    home = os.environ["BENTOML_HOME"]
    store.exists("model", "absent:1")
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "elsewhere"))
    # Then the `bentoml build` subprocess is still pointed at the store in use
    assert store._store_env()["BENTOML_HOME"] == home


def test_an_unchanged_rebuild_is_a_hit_and_a_missing_bento_is_not(churn, monkeypatch) -> None:
    out = churn.result.build_dir.parent
    stages: list[str] = []
    again = build(
        NOTEBOOKS / "churn.ipynb",
        out_dir=out,
        progress=lambda stage, event: stages.append(f"{stage}:{event}"),
    )
    assert again.cached and again.tag == churn.tag
    assert again.metrics == churn.result.metrics and again.bento_path == churn.result.bento_path
    assert "train:done" in stages  # the same progress lines as a full build
    entry = (
        out
        / cache.CACHE_DIR
        / f"{identity.cache_key(read(NOTEBOOKS / 'churn.ipynb'), {}, gate=True)}.json"
    )
    assert entry.exists()

    # Anything the hit relies on that has gone means a real build, never a stale answer.
    monkeypatch.setattr(cache, "_in_store", lambda kind, tag: kind != "bento")
    assert cache.lookup(out, entry.stem) is None
    assert not entry.exists()
