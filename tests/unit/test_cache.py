"""The build cache: a hit needs everything it recorded still in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from nb2prod.builder import cache


def finished(out: Path) -> SimpleNamespace:
    """What a finished build of churn:abc in ``out`` hands the cache."""
    return SimpleNamespace(
        tag="churn:abc",
        version="abc",
        metrics={},
        gates=[],
        bento_path=out / "churn-abc.bento",
        build_dir=out / "churn-abc",
    )


def test_a_hit_needs_its_build_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache.store, "exists", lambda kind, tag: True)
    result = finished(tmp_path)
    build_dir = result.build_dir
    (build_dir / "src").mkdir(parents=True)
    (build_dir / "src" / "nb2prod.json").write_text(json.dumps({"version": "abc"}))
    result.bento_path.write_text("x")
    cache.record(tmp_path, "k", result, "churn-model:abc")
    assert cache.lookup(tmp_path, "k")["tag"] == "churn:abc"
    shutil.rmtree(build_dir)
    assert cache.lookup(tmp_path, "k") is None


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path, caplog) -> None:
    # Given an out dir where `.nb2prod-cache` is a plain file
    (tmp_path / cache.CACHE_DIR).write_text("not a folder")
    result = finished(tmp_path)
    # When a finished build records itself, and a later one looks itself up
    cache.record(tmp_path, "k", result, "churn-model:abc")
    # Then the build still succeeds: one warning, no entry, no hit
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "could not be written" in warnings[0].getMessage()
    assert cache.lookup(tmp_path, "k") is None
    assert (tmp_path / cache.CACHE_DIR).read_text() == "not a folder"
