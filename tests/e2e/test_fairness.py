"""End to end: a notebook with a sensitive column, built with fairness and slice gates.

The training run ships its held-out rows in the bento; the gates are computed on them; a
slice gate that fails names the slice; ``nb2prod monitor --target`` scores the same metrics
on the shipped rows as its reference side.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nb2prod.builder import evaluation as ev
from nb2prod.builder.pipeline import build
from nb2prod.cli import app
from nb2prod.errors import GateFailed
from tests.support import FIXTURES

pytestmark = pytest.mark.e2e
NOTEBOOK = FIXTURES / "fairness" / "applicants.ipynb"


def test_fairness_and_slice_gates_pass_then_a_bad_feed_fails_the_slice(tmp_path: Path) -> None:
    # Given the loan notebook, whose outcomes never depend on gender
    result = build(NOTEBOOK, out_dir=tmp_path / "bentos")
    src = result.build_dir / "src"
    manifest = json.loads((src / "nb2prod.json").read_text())
    # Then the bento ships the held-out rows with outcomes and the model's outputs
    entry = manifest["evaluation"]
    assert entry["X"] == "X_test" and entry["y"] == "y_test"
    assert entry["target_column"] == ev.TARGET and entry["rows"] == 600  # 30% of 2,000
    rows = pd.read_parquet(src / entry["file"])
    assert entry["file"] in manifest["monitoring"]["files"]
    assert list(ev.inputs(rows).columns) == ["age", "income", "debt_ratio", "gender", "region"]
    # the shipped rows score exactly what the notebook's evaluate cell computed on X_test
    assert ev.score(rows, "roc_auc", [0, 1]) == pytest.approx(result.metrics["roc_auc"])
    assert ev.score(rows, "accuracy", [0, 1]) == pytest.approx(result.metrics["accuracy"])
    # And every gate is recorded: the fairness gates passed, each region passed
    by_gate = {}
    for gate in result.gates:
        by_gate.setdefault(gate["metric"], []).append(gate)
    dp = by_gate["demographic_parity_difference[gender]"]
    assert (
        len(dp) == 1 and dp[0]["passed"] and dp[0]["column"] == "gender" and dp[0]["value"] <= 0.15
    )
    assert by_gate["accuracy_difference[gender]"][0]["passed"]
    regions = by_gate["roc_auc[region]"]
    assert sorted(g["slice"] for g in regions) == ["east", "north", "south", "west"]
    assert all(g["passed"] and g["column"] == "region" for g in regions)
    assert sum(g["rows"] for g in regions) == 600
    assert manifest["gates"] == result.gates

    # When the monitor is given outcomes, it scores the shipped rows beside them
    current = pd.read_csv(FIXTURES / "fairness" / "applicants_noisy.csv").sample(
        300, random_state=1
    )
    current.to_csv(tmp_path / "current.csv", index=False)
    report = tmp_path / "monitor.json"
    args = ["monitor", str(result.build_dir), "--current", str(tmp_path / "current.csv")]
    ran = CliRunner().invoke(app, [*args, "--target", "approved", "--json", str(report)])
    assert ran.exit_code == 0, ran.output
    quality = {q["metric"]: q for q in json.loads(report.read_text())["quality"]}
    assert quality["roc_auc"]["evaluation"] == pytest.approx(result.metrics["roc_auc"])
    assert quality["roc_auc"]["current"] < quality["roc_auc"]["evaluation"]  # the noisy west

    # When the same notebook is rebuilt on a feed whose west outcomes are coin flips
    with pytest.raises(GateFailed) as failed:
        build(NOTEBOOK, {"data": "applicants_noisy.csv"}, out_dir=tmp_path / "bentos")
    # Then the slice gate fails, naming the slice, its value and its rows
    message = str(failed.value)
    assert message.startswith(
        "applicants.ipynb: slice gate failed: roc_auc on region = 'west' is 0.4"
    ), message
    assert message.endswith(", which is not >= 0.65 (145 rows)."), message
    assert failed.value.fields["slice"] == "west"
    assert not list((tmp_path / "bentos").glob("applicants-*.bento"))[1:]  # no second bento
