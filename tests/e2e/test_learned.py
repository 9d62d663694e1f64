"""nb2prod.learned end to end: a training statistic lifted as a constant, and the bento serves it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from nb2prod.builder.pipeline import build
from tests.support import CHECK, serve

pytestmark = pytest.mark.e2e


def test_a_learned_median_is_lifted_with_its_value_and_served(tmp_path: Path) -> None:
    # Given a notebook whose features cell fills fares with FARE_MEDIAN, computed in an
    # untagged cell from the training frame and listed in nb2prod.learned
    result = build(CHECK / "learned_fare_median.ipynb", out_dir=tmp_path)
    src = result.build_dir / "src"
    features = (src / "lifted" / "features.py").read_text()
    manifest = json.loads((src / "nb2prod.json").read_text())
    # Then features.py holds the value the training run computed, as plain Python literals
    import numpy as np
    import pandas as pd

    exec(  # noqa: S102 - the notebook's own cell, to compute the expected statistic
        compile(_cell(2), "cell 2", "exec"), env := {"seed": 0, "n_rows": 300}
    )
    median = float(env["X_train"]["fare"].median())
    edges = np.quantile(env["X_train"]["fare"].dropna(), [0.25, 0.5, 0.75]).tolist()
    assert "# Learned in training: statistics of the training data" in features
    tree = ast.parse(features)
    values = {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "").startswith("FARE_")
    }
    assert values == {"FARE_MEDIAN": median, "FARE_EDGES": edges}
    assert manifest["learned"] == {"FARE_EDGES": repr(edges), "FARE_MEDIAN": repr(median)}
    # And the served bento fills a missing fare with that median: the same prediction
    import httpx

    model = pd.read_pickle(result.build_dir / "train" / "model.pkl")
    expected = model.predict(
        pd.DataFrame(
            {
                "fare": [median, median],
                "fare_band": [int(np.searchsorted(edges, median))] * 2,
                "pclass": [3, 1],
            }
        )
    ).tolist()
    with serve(result.tag) as base:
        rows = [{"fare": None, "pclass": 3}, {"fare": median, "pclass": 1}]
        reply = httpx.post(f"{base}/predict", json={"rows": rows}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == expected


def _cell(index: int) -> str:
    nb = json.loads((CHECK / "learned_fare_median.ipynb").read_text())
    return nb["cells"][index]["source"]
