"""Monitoring on a real build: what it attaches, and ``nb2prod monitor`` against it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nb2prod.cli import app
from nb2prod.monitoring.attach import CONFIG, EVIDENTLY
from nb2prod.monitoring.run import monitor
from tests.support import CHURN_ROLES, churn_rows

runner = CliRunner()
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Current-data files: a fresh held-out sample, a shifted one, and bad inputs."""
    folder = tmp_path_factory.mktemp("current")
    churn_rows(1000, 123).to_parquet(folder / "fresh.parquet")
    churn_rows(1000, 124, tenure_shift=24, contract_p=(0.3, 0.4, 0.3)).to_csv(
        folder / "shifted.csv", index=False
    )
    bad = churn_rows(200, 125)
    bad.loc[3, "contract"] = "weekly"
    bad.loc[7, "tenure_months"] = -4
    bad.to_csv(folder / "violates.csv", index=False)
    churn_rows(50, 126).drop(columns=["support_calls"]).to_csv(folder / "lacks.csv", index=False)
    churn_rows(1, 127).to_csv(folder / "one-row.csv", index=False)
    words = churn_rows(200, 128)
    words["churned"] = words["churned"].map({1: "yes", 0: "no"})
    words.to_csv(folder / "yes-no.csv", index=False)
    (folder / "notes.txt").write_text("tenure_months,contract\n1,two-year\n")
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (folder / "empty").mkdir()
    return folder


def cli(*args: Any) -> Any:
    return runner.invoke(app, ["monitor", *map(str, args)])


@pytest.mark.parametrize("example", ["churn", "diabetes"])
def test_each_example_bento_carries_monitoring(
    example: str, request: pytest.FixtureRequest
) -> None:
    from evidently.cli.report import ReportConfig

    built = request.getfixturevalue(example)
    entry = built.manifest["monitoring"]
    for name in entry["files"]:
        assert (built.src / name).is_file(), name
    with tarfile.open(built.result.bento_path) as archive:
        names = {n.removeprefix("./") for n in archive.getnames()}
    assert {f"src/{name}" for name in entry["files"]} <= names
    config = json.loads((built.src / "monitoring" / CONFIG).read_text())
    roles = {c["name"]: c["role"] for c in config["columns"]}
    if example == "churn":
        assert roles == CHURN_ROLES
        assert config["prediction"]["role"] == "categorical"
    else:
        assert roles["sex"] == "categorical"  # isin=[1.0, 2.0]: a coded number
        assert roles["bmi"] == "numerical"
        assert config["prediction"]["role"] == "numerical"
    assert all(c["method"] and c["threshold"] > 0 for c in config["columns"])
    # a fresh Evidently loads the stored config back into a runnable report
    report = ReportConfig.load(str(built.src / "monitoring" / EVIDENTLY)).to_report()
    assert len(report.metrics) == 2


def test_reference_is_valid_with_aligned_predictions(churn: Any) -> None:
    reference, predictions = churn.reference(), churn.notebook_predictions()
    assert len(reference) == len(predictions) == churn.manifest["monitoring"]["reference_rows"]
    assert list(reference.columns) == list(CHURN_ROLES)
    assert {"prediction", "proba_0", "proba_1"} <= set(predictions.columns)


def test_fresh_held_out_sample_exits_0_and_writes_reports(
    churn: Any, data: Path, tmp_path: Path
) -> None:
    html, out = tmp_path / "fresh.html", tmp_path / "fresh.json"
    result = cli(
        churn.result.build_dir, "--current", data / "fresh.parquet", "--html", html, "--json", out
    )
    assert result.exit_code == 0, result.output
    assert "no drift" in result.stdout
    summary = json.loads(out.read_text())
    assert summary["drifted_columns"] == [] and summary["rows"] == 1000
    assert html.read_text().lstrip().lower().startswith("<!doctype html")


def test_shifted_data_exits_1_naming_exactly_the_shifted_columns(
    churn: Any, data: Path, tmp_path: Path
) -> None:
    html, out = tmp_path / "shifted.html", tmp_path / "shifted.json"
    result = cli(
        churn.result.build_dir, "--current", data / "shifted.csv", "--html", html, "--json", out
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(out.read_text())
    assert set(summary["drifted_columns"]) == {"tenure_months", "contract"}
    assert "drifted: tenure_months, contract" in result.stdout
    assert html.stat().st_size > 10_000


def test_target_adds_quality_next_to_training_metrics(
    churn: Any, data: Path, tmp_path: Path
) -> None:
    html = tmp_path / "fresh.html"
    result = monitor(churn.result.build_dir, data / "fresh.parquet", target="churned", html=html)
    scores = {q["metric"]: q for q in result.quality}
    assert set(churn.manifest["metrics"]) <= set(scores)
    assert scores["roc_auc"]["training"] == churn.manifest["metrics"]["roc_auc"]
    assert scores["roc_auc"]["current"] > 0.7 and scores["roc_auc"]["gate_passed"] is True
    assert result.exit_code == 0
    # And Evidently's own quality report is written beside the drift report
    assert result.quality_html == str(tmp_path / "fresh.quality.html")
    page = Path(result.quality_html).read_text()
    assert "RocAuc" in page or "ROC AUC" in page
    assert result.to_dict()["quality_html"] == result.quality_html


def test_monitor_takes_a_bento_file_or_a_store_tag(churn: Any, data: Path) -> None:
    for target in (churn.result.bento_path, churn.tag):
        result = monitor(target, data / "fresh.parquet")
        assert result.exit_code == 0, target
        assert result.prediction is not None  # the model was found and predicted


@pytest.mark.parametrize(
    ("current", "says"),
    [
        ("missing.csv", "does not exist"),
        ("notes.txt", "unknown format (.txt)"),
        ("broken.parquet", "Cannot read current data"),
        ("empty", "without prediction logs"),
        ("violates.csv", "in column(s) contract (1 failure(s)), tenure_months (1 failure(s))"),
        ("lacks.csv", "lacks input column(s) support_calls"),
        ("one-row.csv", "has 1 row(s), too few for a drift test: it needs at least 30"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    churn: Any, data: Path, current: str, says: str
) -> None:
    result = cli(churn.result.build_dir, "--current", data / current)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_string_target_against_numeric_classes_is_exit_2_naming_it(
    churn: Any, data: Path
) -> None:
    result = cli(churn.result.build_dir, "--current", data / "yes-no.csv", "--target", "churned")
    assert result.exit_code == 2, result.output
    assert "--target churned: column `churned` holds" in result.stderr
    assert "not among the model's classes (0, 1)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_logs_with_an_input_named_prediction_and_bad_lines_give_a_verdict(
    churn: Any, tmp_path: Path
) -> None:
    import numpy as np

    from nb2prod.serving.sink import Sink

    # Given logs whose inputs carry a column named like the model output, and two bad lines
    reference = churn.reference().sample(n=900, random_state=5)
    predictions = churn.notebook_predictions()["prediction"].loc[reference.index].to_numpy()
    sink = Sink(str(tmp_path), 2**20, churn.manifest["name"], churn.manifest["version"])
    for i in range(0, 900, 3):
        rows = reference.iloc[i : i + 3].assign(prediction=0.5).reset_index(drop=True)
        sink.log("predict", rows, np.asarray(predictions[i : i + 3]), ["prediction"])
    sink.close()
    with open(min((tmp_path / "churn").glob("*.jsonl")), "ab") as fh:
        fh.write(b'{"inputs": {"columns": ["contract"], "data": "two-year"}, "outputs": {}}\n')
        fh.write(b'{"request_id": "\xff\xfe"}\n')
    # When monitor reads them, Then it gives its verdict on the good lines, with a note
    result = cli(churn.result.build_dir, "--current", tmp_path)
    assert result.exit_code == 0, result.output
    assert "900 current rows" in result.stdout
    assert "skipped 2 unreadable log line(s)" in result.stdout
