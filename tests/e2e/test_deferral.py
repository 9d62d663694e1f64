"""End to end: ``serving.defer_below`` on a served classifier, and refused for a regressor."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nb2prod.cli import app
from tests.support import NOTEBOOKS, Built, records, serve

pytestmark = pytest.mark.e2e
DEFER_BELOW = 0.7


def _copy(name: str, folder: Path, service: str) -> Path:
    """The example notebook with ``serving.defer_below`` set, under another service name."""
    node = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    node["metadata"]["nb2prod"] |= {"name": service, "serving": {"defer_below": DEFER_BELOW}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{service}.ipynb"
    path.write_text(json.dumps(node, indent=1), encoding="utf-8")
    return path


def _logged_rows(folder: Path) -> int:
    lines = [x for f in folder.glob("*.jsonl") for x in f.read_text().splitlines()]
    return sum(json.loads(x)["rows"] for x in lines)


def test_rows_under_defer_below_come_back_deferred_and_monitor_shows_the_rate(
    tmp_path: Path,
) -> None:
    import httpx

    from nb2prod.builder.pipeline import build

    built = Built(build(_copy("churn", tmp_path / "nb", "churn_defer"), out_dir=tmp_path / "b"))
    assert built.manifest["serving"]["defer_below"] == DEFER_BELOW
    # as many rows as monitor's own e2e test: fewer drift by chance, and exit 1 would mean both
    rows = built.reference().sample(n=900, random_state=5).reset_index(drop=True)
    logs = tmp_path / "logs"
    predicted, proba = [], []
    with serve(built.tag, env={"NB2PROD_LOG_DIR": str(logs)}) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            for i in range(0, len(rows), 100):
                body = {"rows": records(rows.iloc[i : i + 100])}
                predicted.append(client.post("/predict", json=body).json())
                proba.append(client.post("/predict_proba", json=body).json())
            empty = client.post("/predict", json={"rows": []}).json()
        deadline = time.monotonic() + 30
        while _logged_rows(logs / "churn_defer") < 2 * len(rows) and time.monotonic() < deadline:
            time.sleep(0.2)
    # Then each answer flags exactly the rows whose top class probability is under 0.7
    expected = [max(p) < DEFER_BELOW for a in proba for p in a["probabilities"]]
    assert [f for a in proba for f in a["deferred"]] == expected
    assert [f for a in predicted for f in a["deferred"]] == expected
    assert len(expected) == len(rows) and 0 < sum(expected) < len(expected)
    assert all(len(a["predictions"]) == len(a["deferred"]) for a in predicted)
    assert empty == {"predictions": [], "model_version": built.manifest["version"], "deferred": []}
    # And the log carries the flags, and monitor reports their rate beside drift
    lines = [json.loads(x) for f in (logs / "churn_defer").glob("*.jsonl") for x in f.open()]
    assert sum(f for x in lines for f in x["deferred"]) == 2 * sum(expected)
    out = tmp_path / "summary.json"
    args = ["monitor", built.tag, "--current", str(logs), "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "deferred to a person:" in result.output
    deferral = json.loads(out.read_text())["deferral"]
    assert deferral["rows"] == 2 * len(rows)
    assert deferral["rate"] == pytest.approx(sum(expected) / len(expected))
    assert (deferral["defer_below"], deferral["exceeded"]) == (DEFER_BELOW, False)
    result = CliRunner().invoke(app, [*args, "--max-defer-rate", "0.0"])
    assert result.exit_code == 1, result.output
    assert json.loads(out.read_text())["deferral"]["exceeded"] is True


def test_a_regressor_with_defer_below_is_refused_naming_the_setting(tmp_path: Path) -> None:
    notebook = _copy("diabetes", tmp_path / "nb", "diabetes_defer")
    assert CliRunner().invoke(app, ["check", str(notebook)]).exit_code == 0  # a valid number
    result = CliRunner().invoke(app, ["build", str(notebook), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1, result.output
    assert (
        "diabetes_defer.ipynb: notebook setting nb2prod.serving.defer_below needs a "
        "classifier's top class probability, and the model is a regressor"
    ) in " ".join(result.output.split())
