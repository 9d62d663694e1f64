"""End to end: replay answers as the served bento does, and ``nb2prod shadow`` on its logs.

One extra build: a planted regression of churn (one tree, a tiny learning rate).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nb2prod.bento.replay import replay
from nb2prod.cli import app
from tests.support import NOTEBOOKS, WEAK_CHURN, Built, churn_rows, records, serve

pytestmark = pytest.mark.e2e
ROWS = 240


def _logged_rows(folder: Path) -> int:
    lines = [line for f in folder.glob("*.jsonl") for line in f.read_text().splitlines()]
    return sum(json.loads(line)["rows"] for line in lines if line.strip())


def test_replay_answers_as_the_served_bento_and_shadow_reads_its_logs(
    churn: Any, tmp_path: Path
) -> None:
    import httpx

    # Given the churn bento served with its prediction log in a temporary directory
    rows = churn.reference().sample(n=ROWS, random_state=11).reset_index(drop=True)
    bad = rows.head(2).copy()
    bad.loc[0, "tenure_months"] = -4
    bad.loc[1, "contract"] = "weekly"
    root = tmp_path / "logs"
    with serve(churn.tag, env={"NB2PROD_LOG_DIR": str(root)}) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            served = []
            for start in range(0, ROWS, 40):  # requests of 40 rows
                answer = client.post("/predict", json={"rows": records(rows[start : start + 40])})
                assert answer.status_code == 200, answer.text
                served += answer.json()["predictions"]
            answer = client.post("/predict_proba", json={"rows": records(rows)})
            assert answer.status_code == 200, answer.text
            served_proba = np.asarray(answer.json()["probabilities"])
            alone = [client.post("/predict", json={"rows": records(bad.iloc[[i]])}) for i in (0, 1)]
            assert [a.status_code for a in alone] == [422, 422]
        deadline = time.monotonic() + 30
        while _logged_rows(root / "churn") < 2 * ROWS and time.monotonic() < deadline:
            time.sleep(0.2)

    # When the same rows, and the bad ones after them, are replayed through the bento
    frame = pd.concat([rows, bad], ignore_index=True)
    replayed = replay(churn.tag, frame, batch_rows=64)
    # Then each answer is the served one: the prediction, the probabilities, and each bad
    # row's failures as its own 422 listed them
    assert replayed.predictions.index.tolist() == list(range(ROWS))
    assert replayed.predictions["prediction"].tolist() == served
    proba = replayed.predictions[["proba_0", "proba_1"]].to_numpy()
    assert np.allclose(proba, served_proba, rtol=0, atol=1e-12)
    assert replayed.rejects == [
        {"row": ROWS + i, "status": 422, "failures": alone[i].json()["failures"]} for i in (0, 1)
    ]
    assert replayed.model_version == churn.manifest["version"]
    assert replayed.latency["p50_ms"] > 0

    # And shadowing the bento against its own build directory on those logs agrees everywhere
    out = tmp_path / "shadow.json"
    args = ["shadow", churn.tag, str(churn.result.build_dir), "--traffic", str(root)]
    result = CliRunner().invoke(
        app, [*args, "--json", str(out), "--html", str(tmp_path / "s.html")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["rows"] == 2 * ROWS  # /predict and /predict_proba both logged them
    assert report["agreement"]["agreement"] == 1.0 and report["agreement"]["flipped"] == 0
    assert report["drift"]["drifted"] is False
    assert report["champion"]["rejects"]["count"] == report["challenger"]["rejects"]["count"] == 0
    assert "Prediction shift (Evidently)" in (tmp_path / "s.html").read_text()


def test_a_planted_regression_exits_1_with_worse_accuracy(churn: Any, tmp_path: Path) -> None:
    from nb2prod.builder.pipeline import build

    # Given a challenger trained with one tree and a learning rate too small to learn
    out_dir = churn.result.bento_path.parent  # its cache: test_lifecycle builds it too
    weak = Built(build(NOTEBOOKS / "churn.ipynb", WEAK_CHURN, out_dir=out_dir))
    assert weak.tag != churn.tag
    # and fresh traffic with its true outcomes
    traffic = churn_rows(800, 21)
    traffic.to_parquet(tmp_path / "traffic.parquet", index=False)
    out = tmp_path / "shadow.json"
    # When it is shadowed against the champion
    args = ["shadow", churn.tag, weak.tag, "--traffic", str(tmp_path / "traffic.parquet")]
    result = CliRunner().invoke(app, [*args, "--target-column", "churned", "--json", str(out)])
    # Then the report fails it on quality (with outcomes, quality decides): its accuracy is
    # worse; the flipped classes are reported beside it
    assert result.exit_code == 1, result.output
    report = json.loads(out.read_text())
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert failed == {"accuracy"}
    assert report["agreement"]["agreement"] < 0.95
    metrics = report["metrics"]
    assert metrics["rows"] == 800
    # one tree still ranks customers (its roc_auc is computed), but at a learning rate of 0.01
    # no probability crosses 0.5: it says "stays" to every customer the champion flags
    assert report["agreement"]["labels"] == [0, 1]
    assert [row[1] for row in report["agreement"]["matrix"]] == [0, 0]
    assert isinstance(metrics["challenger"]["roc_auc"], float)
    assert metrics["difference"]["accuracy"] < 0
    assert "failed: accuracy" in result.output
