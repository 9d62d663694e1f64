"""The build cache: a hit needs everything it recorded still in place."""

from __future__ import annotations

import json
import shutil

from nb2prod.builder import cache


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
