"""The build cache against real training runs: data read under a computed path that changes
is a rebuild, never a cache hit; an nbformat 4.4 notebook builds with a clean log."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from nb2prod.builder import cache, identity
from nb2prod.builder.pipeline import build
from nb2prod.cli import app
from tests.support import FIXTURES

NOTEBOOK = FIXTURES / "cache" / "store_sales_read_under_a_concatenated_data_path.ipynb"
NAME = NOTEBOOK.stem


def write_data(folder: Path, seed: int) -> None:
    """The notebook's data: ``train.csv`` and a parquet folder ``regions/``, from ``seed``."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south"], size=300)
    units = np.round(rng.uniform(0, 500, size=300), 2)
    big = ((units > 250) ^ (region == "north")).astype(int)
    (folder / "regions").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"units": units, "region": region, "big": big}).to_csv(
        folder / "train.csv", index=False
    )
    rents = pd.DataFrame({"region": ["north", "south"], "rent": [40.0, 25.5]})
    rents.to_parquet(folder / "regions" / "part-0.parquet", index=False)


def test_changed_data_under_a_concatenated_path_rebuilds_and_4_4_logs_clean(
    tmp_path, monkeypatch, caplog, recwarn
) -> None:
    # The key covers nb2prod's own source; pinned for this test, as other work may edit the
    # tree while it runs. Everything else in the key, and the data check, is the real one.
    source = identity.nb2prod_source_sha256()
    monkeypatch.setattr(identity, "nb2prod_source_sha256", lambda: source)
    # Given an nbformat 4.4 notebook (no cell ids) reading DATA + "train.csv" and a parquet
    # folder with pyarrow, which opens it in C++
    notebook = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    assert json.loads(notebook.read_text())["nbformat_minor"] == 4
    write_data(tmp_path / "data", seed=1)
    out = tmp_path / "bentos"

    # When it is built from the command line, its output captured (not a terminal)
    done = CliRunner().invoke(
        app, ["build", str(notebook), "--out", str(out), "--no-gate"], catch_exceptions=False
    )
    # Then it builds, and nothing logged (the CLI logs to stderr) calls the notebook invalid
    assert done.exit_code == 0, done.output
    assert "invalid" not in (done.stdout + done.stderr).lower(), done.stderr
    assert not [w for w in recwarn if "MissingIDField" in w.category.__name__]
    # and the summary's lines are whole: the serve command can be pasted
    lines = done.stdout.splitlines()
    tag = next(line.split()[1] for line in lines if line.startswith("bento "))
    serve = f"bentoml serve {tag} --host 127.0.0.1 --port 3000"
    assert len(serve) > 80
    assert [line.split(None, 1)[1] for line in lines if line.startswith("serve ")] == [serve]
    assert any(line.startswith("file ") and line.endswith(".bento") for line in lines)

    # and the cache entry holds the files training read, the parquet one included
    (entry_file,) = (out / cache.CACHE_DIR).glob("*.json")
    inputs = json.loads(entry_file.read_text())["inputs"]
    data = tmp_path / "data"
    assert set(inputs["files"]) == {
        str(data / "train.csv"),
        str(data / "regions" / "part-0.parquet"),
    }
    assert inputs["off"] is None and inputs["listed"] == {}

    # (the CLI configured logging for its run: take the log back for the builds below)
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level("INFO", logger="nb2prod.builder.cache")

    # When it is built again unchanged, after a failed build of the same name left its files
    (out / f"{NAME}.failed.ipynb").write_text("{}")
    (out / f"{NAME}.failed" / "src").mkdir(parents=True)
    again = build(notebook, out_dir=out, gate=False)
    # Then it is a cache hit, and the stale leftovers are gone
    assert again.cached and again.tag == tag
    assert not (out / f"{NAME}.failed.ipynb").exists() and not (out / f"{NAME}.failed").exists()

    # When the data changes under the same computed path, and the notebook does not
    write_data(tmp_path / "data", seed=2)
    caplog.clear()
    rebuilt = build(notebook, out_dir=out, gate=False)
    # Then it trains again: no cache hit, a new model, and the log names the file
    assert f"data changed: {data / 'train.csv'}" in caplog.text
    assert not rebuilt.cached
    assert rebuilt.tag != tag
