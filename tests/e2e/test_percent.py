"""A notebook kept as a jupytext percent script builds to a bento, as its .ipynb would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nb2prod.builder.pipeline import build
from tests.support import FIXTURES

pytestmark = pytest.mark.e2e
LEMONADE = FIXTURES / "percent" / "lemonade.py"


def test_a_percent_script_builds_to_a_bento(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bentoml

    # Given the script, built from another folder: it reads lemonade.csv relative to its own
    monkeypatch.chdir(tmp_path)
    # When it is built (papermill runs the .ipynb prepared from it)
    result = build(LEMONADE, out_dir=tmp_path / "bentos")
    # Then the bento is in the store, the gate passed, and the manifest names the script
    manifest = json.loads((result.build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["notebook"] == "lemonade.py"
    assert manifest["notebook_sha256"] == hashlib.sha256(LEMONADE.read_bytes()).hexdigest()
    assert manifest["properties"]["gate"] is True
    assert result.metrics["r2"] >= 0.5 and result.bento_path.is_file()
    assert bentoml.get(result.tag).tag.name == "lemonade"
    features = (result.build_dir / "src" / "lifted" / "features.py").read_text()
    assert "# %% lemonade.py · cell 5 (index-5)" in features
