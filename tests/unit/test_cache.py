"""The build cache: a hit needs everything it recorded still in place, and the same data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from nb2prod.builder import cache, reads


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


def in_place(out: Path) -> SimpleNamespace:
    """A finished build whose directory and ``.bento`` file are there."""
    result = finished(out)
    (result.build_dir / "src").mkdir(parents=True)
    (result.build_dir / "src" / "nb2prod.json").write_text(json.dumps({"version": "abc"}))
    result.bento_path.write_text("x")
    return result


def read_by_training(train: Path, files: list[Path], elsewhere: list) -> reads.Inputs:
    """The inputs of a training run in ``train`` that read ``files`` (and ``elsewhere``)."""
    train.mkdir(parents=True, exist_ok=True)
    record = {"files": [str(f) for f in files], "listed": [], "elsewhere": elsewhere}
    (train / reads.READS_FILE).write_text(json.dumps(record))
    return reads.inputs(train)


def test_a_hit_needs_its_build_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache.store, "exists", lambda kind, tag: True)
    result = in_place(tmp_path)
    build_dir = result.build_dir
    cache.record(tmp_path, "k", result, "churn-model:abc", reads.Inputs())
    assert cache.lookup(tmp_path, "k")["tag"] == "churn:abc"
    shutil.rmtree(build_dir)
    assert cache.lookup(tmp_path, "k") is None


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path, caplog) -> None:
    # Given an out dir where `.nb2prod-cache` is a plain file
    (tmp_path / cache.CACHE_DIR).write_text("not a folder")
    result = finished(tmp_path)
    # When a finished build records itself, and a later one looks itself up
    cache.record(tmp_path, "k", result, "churn-model:abc", reads.Inputs())
    # Then the build still succeeds: one warning, no entry, no hit
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "could not be written" in warnings[0].getMessage()
    assert cache.lookup(tmp_path, "k") is None
    assert (tmp_path / cache.CACHE_DIR).read_text() == "not a folder"


def test_data_read_under_a_concatenated_path_that_changed_is_a_miss(
    tmp_path, monkeypatch, caplog
) -> None:
    # Given a build whose training read data/train.csv (named as DATA + "train.csv")
    monkeypatch.setattr(cache.store, "exists", lambda kind, tag: True)
    data = tmp_path / "data" / "train.csv"
    data.parent.mkdir()
    data.write_text("a,b\n1,2\n")
    inputs = read_by_training(tmp_path / "train", [data], [])
    cache.record(tmp_path, "k", in_place(tmp_path), "churn-model:abc", inputs)
    assert cache.lookup(tmp_path, "k") is not None
    # When the data changes, and the notebook does not
    data.write_text("a,b\n1,3\n")
    # Then the same key is a miss, and the log says which file changed
    caplog.set_level("INFO", logger="nb2prod.builder.cache")
    assert cache.lookup(tmp_path, "k") is None
    assert f"data changed: {data}" in caplog.text
    data.write_text("a,b\n1,2\n")  # back as it was: a hit again
    assert cache.lookup(tmp_path, "k") is not None


def test_a_notebook_that_read_from_the_network_never_hits(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(cache.store, "exists", lambda kind, tag: True)
    elsewhere = [["the network", "socket.connect to db.example.com:5432"]]
    inputs = read_by_training(tmp_path / "train", [], elsewhere)
    cache.record(tmp_path, "k", in_place(tmp_path), "churn-model:abc", inputs)
    entry = json.loads((tmp_path / cache.CACHE_DIR / "k.json").read_text())
    assert entry["inputs"]["off"] == (
        "its training run read from the network (socket.connect to db.example.com:5432)"
    )
    caplog.set_level("INFO", logger="nb2prod.builder.cache")
    assert cache.lookup(tmp_path, "k") is None
    assert cache.lookup(tmp_path, "k") is None  # the entry stays, and keeps saying why
    assert caplog.text.count("cache off for this notebook: its training run read from") == 2


def test_an_entry_that_does_not_say_what_training_read_is_a_miss(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache.store, "exists", lambda kind, tag: True)
    cache.record(tmp_path, "k", in_place(tmp_path), "churn-model:abc", reads.Inputs())
    path = tmp_path / cache.CACHE_DIR / "k.json"
    entry = json.loads(path.read_text())
    del entry["inputs"]  # written by an nb2prod that did not record reads
    path.write_text(json.dumps(entry))
    assert cache.lookup(tmp_path, "k") is None
