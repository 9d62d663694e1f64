"""nb2prod rebuild against real builds: the churn bento rebuilds to itself; changed data
under a computed path is named, file by file."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from nb2prod.cli import app
from tests.e2e.test_cache_e2e import NOTEBOOK, write_data
from tests.support import Built


def test_the_churn_bento_rebuilds_to_the_same_version_and_metrics(churn: Built) -> None:
    # Given the churn bento in the store, its manifest naming the notebook and what it read
    assert churn.manifest["notebook_path"].endswith("notebooks/churn.ipynb")
    assert churn.manifest["data"]["off"] is None
    # When it is rebuilt by its tag
    done = CliRunner().invoke(app, ["rebuild", churn.tag, "--json"], catch_exceptions=False)
    # Then the fresh build (no cache) is the same bento, with the same metrics
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["verdict"] == "same", report["differences"]
    assert report["new_tag"] == churn.tag and report["differences"] == []


def test_changed_data_is_named_by_the_rebuild(tmp_path) -> None:
    # Given a notebook that reads DATA + "train.csv", built, and its data then changed
    notebook = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    write_data(tmp_path / "data", seed=1)
    out = tmp_path / "bentos"
    built = CliRunner().invoke(
        app, ["build", str(notebook), "--out", str(out), "--no-gate"], catch_exceptions=False
    )
    assert built.exit_code == 0, built.output
    (build_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    manifest = json.loads((build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["data"]["files"].keys() >= {"data/train.csv", "data/regions/part-0.parquet"}
    assert manifest["properties"]["gate"] is False
    write_data(tmp_path / "data", seed=2)
    # When the build directory is rebuilt
    done = CliRunner().invoke(app, ["rebuild", str(build_dir)], catch_exceptions=False)
    # Then it exits 1, naming the changed file (and only the data as a cause)
    assert done.exit_code == 1, done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"different: {manifest['tag']} rebuilt as "), lines
    assert any(line.startswith("  data data/train.csv: sha256 changed") for line in lines), lines
    causes = [line.split()[0] for line in lines[1:] if not line.startswith("  note")]
    assert "package" not in causes and "notebook" not in causes and "parameter" not in causes
    assert "version" in causes
