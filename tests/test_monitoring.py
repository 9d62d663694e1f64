"""Monitoring: what a build attaches, the prediction-log sink, and ``nb2prod monitor``."""

from __future__ import annotations

import importlib.util
import json
import logging
import queue
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nb2prod.cli import app
from nb2prod.errors import MonitorError, NotebookError
from nb2prod.monitor import monitor
from nb2prod.monitor_inputs import read_current
from nb2prod.monitoring import CONFIG, EVIDENTLY, _sample, plan

runner = CliRunner()
CHURN_ROLES = {
    "tenure_months": "numerical",
    "monthly_charges": "numerical",
    "contract": "categorical",
    "payment_method": "categorical",
    "support_calls": "numerical",
}


def churn_rows(
    n: int, seed: int, *, tenure_shift: int = 0, contract_p: tuple = (0.55, 0.25, 0.2)
) -> pd.DataFrame:
    """Fresh rows from churn.ipynb's generator (another seed), plus the true ``churned``."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=n, p=list(contract_p))
    payment = rng.choice(["card", "bank-transfer", "electronic-check", "mailed-check"], size=n)
    tenure = np.clip(rng.integers(0, 73, size=n) + tenure_shift, 0, 120)
    charges = np.round(rng.gamma(4.0, 16.0, size=n) + 18, 2)
    calls = rng.poisson(1.5, size=n)
    logit = (
        -1.2
        + 2.0 * (contract == "month-to-month")
        - 0.06 * tenure
        + 0.02 * (charges - 70)
        + 0.5 * calls
        + 0.8 * (payment == "electronic-check")
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    raw = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "contract": contract,
            "payment_method": payment,
            "support_calls": calls,
        }
    )
    raw.loc[rng.random(n) < 0.05, "monthly_charges"] = np.nan
    raw["payment_method"] = raw["payment_method"].astype(object)
    raw.loc[rng.random(n) < 0.08, "payment_method"] = None
    raw["churned"] = churned.astype(int)
    return raw


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


def test_reference_is_sampled_to_the_cap() -> None:
    reference = pd.DataFrame({"x": range(100)})
    predictions = pd.DataFrame({"prediction": [i * 10 for i in range(100)]})
    ref, pred = _sample(reference, predictions, 30)
    assert len(ref) == len(pred) == 30
    assert (pred["prediction"] == ref["x"] * 10).all()


def test_notebook_settings_choose_methods_and_thresholds() -> None:
    frame = churn_rows(400, 1).drop(columns="churned")
    preds = pd.DataFrame({"prediction": np.arange(400) % 2})
    settings = {
        "num_method": "psi",
        "threshold": 0.2,
        "drift_share": 0.5,
        "columns": {"tenure_months": {"method": "ks", "threshold": 0.01}},
    }
    config = plan(settings, CHURN_ROLES, frame, preds, "classification", "nb")
    by_name = {c["name"]: c for c in config["columns"]}
    assert (by_name["tenure_months"]["method"], by_name["tenure_months"]["threshold"]) == (
        "ks",
        0.01,
    )
    assert (by_name["support_calls"]["method"], by_name["support_calls"]["threshold"]) == (
        "psi",
        0.2,
    )
    assert by_name["contract"]["method_source"] == "evidently default"
    assert by_name["contract"]["method"] == "chisquare"  # Evidently's pick for <= 1000 rows
    assert config["drift_share"] == 0.5
    default = plan({}, CHURN_ROLES, frame, preds, "classification", "nb")
    assert default["drift_share"] == pytest.approx(0.2)  # one of five columns is enough


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"methd": "psi"}, "unknown key(s) methd"),
        ({"columns": {"contract": {"method": "wasserstein"}}}, "not an Evidently drift method"),
        ({"columns": {"nope": {"method": "psi"}}}, "`nope`, which is not an input column"),
        ({"drift_share": 2}, "drift_share must be a number"),
    ],
)
def test_bad_monitoring_settings_fail_the_build(settings: dict, says: str) -> None:
    frame = churn_rows(50, 2).drop(columns="churned")
    preds = pd.DataFrame({"prediction": np.arange(50) % 2})
    with pytest.raises(NotebookError, match="nb2prod.monitoring|drift method") as info:
        plan(settings, CHURN_ROLES, frame, preds, "classification", "churn.ipynb")
    assert says in str(info.value)


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


def test_unknown_bento_is_bad_input(data: Path) -> None:
    result = cli("no-such-bento:v1", "--current", data / "fresh.parquet")
    assert result.exit_code == 2
    assert "No bento `no-such-bento:v1`" in result.stderr


# --- the sink that ships inside the bento ------------------------------------------------


def load_sink(src: Path) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"sink_{time.monotonic_ns()}", src / "nb2prod_sink.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _frame(churn: Any, n: int) -> pd.DataFrame:
    return churn.reference().head(n)


def test_sink_writes_logs_that_monitor_reads(churn: Any, tmp_path: Path) -> None:
    sink = load_sink(churn.src).Sink(str(tmp_path / "logs"), 10 * 2**20, churn.manifest["version"])
    ids = [
        sink.log("predict", _frame(churn, 3), np.array([0, 1, 0]), ["prediction"]) for _ in range(5)
    ]
    sink.log(
        "predict_proba",
        _frame(churn, 2),
        np.array([[0.2, 0.8], [0.6, 0.4]]),
        ["proba_0", "proba_1"],
    )
    sink.close()
    lines = [
        json.loads(x)
        for f in (tmp_path / "logs").glob("*.jsonl")
        for x in f.read_text().splitlines()
    ]
    assert [x["request_id"] for x in lines[:5]] == ids and len(set(ids)) == 5
    assert {x["model_version"] for x in lines} == {churn.manifest["version"]}
    frame = read_current(tmp_path / "logs")
    assert len(frame) == 17
    assert frame["prediction"].notna().sum() == 15 and frame["proba_1"].notna().sum() == 2
    assert list(frame.columns[:5]) == list(CHURN_ROLES)


def test_sink_stays_under_its_size_cap(churn: Any, tmp_path: Path) -> None:
    cap = 256 * 1024
    sink = load_sink(churn.src).Sink(str(tmp_path), cap, "v")
    frame, preds = _frame(churn, 50), np.zeros(50, dtype=int)
    for _ in range(400):  # ~2.6 MB of log lines
        sink.log("predict", frame, preds, ["prediction"])
        if sink._queue.qsize() > 1000:
            sink.flush()
    sink.close()
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) > 1
    assert sum(f.stat().st_size for f in files) <= cap + sink.file_bytes


def test_unwritable_sink_never_raises_or_waits_and_warns_once(
    churn: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sink = load_sink(churn.src).Sink(str(blocker / "logs"), 2**20, "v")
    frame, preds = _frame(churn, 1), np.array([1])
    with caplog.at_level(logging.WARNING, logger="nb2prod.sink"):
        took = []
        for _ in range(200):
            start = time.perf_counter()
            sink.log("predict", frame, preds, ["prediction"])
            took.append(time.perf_counter() - start)
        sink.flush()
        sink.close()
    assert sink.written == 0 and sink.dropped == 200
    assert len([r for r in caplog.records if r.name == "nb2prod.sink"]) == 1
    assert float(np.median(took)) < 1e-3  # a queue put, not a disk write


def test_full_queue_drops_instead_of_waiting(churn: Any, tmp_path: Path) -> None:
    sink = load_sink(churn.src).Sink(str(tmp_path), 2**20, "v")
    sink._queue = queue.Queue(maxsize=1)
    sink._thread = object()  # a stalled writer: nothing drains the queue
    frame, preds = _frame(churn, 1), np.array([1])
    assert sink.log("predict", frame, preds, ["prediction"]) is not None
    assert sink.log("predict", frame, preds, ["prediction"]) is None
    assert sink.dropped == 1


def test_log_dir_off_disables_the_sink(churn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NB2PROD_LOG_DIR", "off")
    module = load_sink(churn.src)
    assert module.sink.directory is None
    assert module.sink.log("predict", _frame(churn, 1), np.array([1]), ["prediction"]) is None
    monkeypatch.delenv("NB2PROD_LOG_DIR")
    default = load_sink(churn.src).sink.directory
    assert default == Path("~/.local/share/nb2prod/logs/churn").expanduser()


def test_monitor_error_is_exit_code_2() -> None:
    assert MonitorError("x").exit_code == 2
