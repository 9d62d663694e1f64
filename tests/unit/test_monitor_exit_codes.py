"""``nb2prod monitor`` exit codes mean what they say, on a small hand-made build (no kernel).

Exit 1 means drift (a nightly job retrains on it), so bad input and crashes are exit 2 with
one sentence. The build is made the way a build makes it after training: the lifted schema,
a real model, and monitoring attached by ``attach``. One of its inputs is named
``prediction``, like the model's output, and one check is the notebook's own.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from nb2prod.cli import _run, app
from nb2prod.errors import ReferenceInvalid
from nb2prod.monitoring.attach import attach
from nb2prod.serving.sink import Sink

SCHEMA = '''"""A toy input schema: an input named like the model output, and a custom check."""
import pandera.pandas as pa
from pandera.typing import Series


class Row(pa.DataFrameModel):
    x: Series[float] = pa.Field(ge=-100, le=100)
    prediction: Series[float] = pa.Field(ge=0, le=1)
    color: Series[str] = pa.Field(isin=["red", "blue"])

    @pa.check("x")
    def below_fifty(cls, series):
        return series < 50

    class Config:
        coerce = True
'''
MANIFEST = {
    "name": "toy",
    "version": "v1",
    "tag": "toy:v1",
    "model_tag": "toy-model:v1",
    "notebook": "toy.ipynb",
    "input_schema": "Row",
    "entrypoint": None,
    "metrics": {"accuracy": 0.9},
    "gates": [],
}
runner = CliRunner()


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": np.clip(rng.normal(0, 10, n), -40, 40),
            "prediction": rng.random(n),
            "color": rng.choice(["red", "blue"], n),
        }
    )


def truth(frame: pd.DataFrame) -> np.ndarray:
    return (frame["x"] + 10 * frame["prediction"] + 8 * (frame["color"] == "red") > 5).to_numpy()


def make(root: Path, reference: pd.DataFrame) -> tuple[Path, Any, Any, dict]:
    """``root/src`` lifted and ``root/train`` trained; returns what ``attach`` takes."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    src, train = root / "src", root / "train"
    (src / "lifted").mkdir(parents=True)
    (src / "lifted" / "__init__.py").write_text("")
    (src / "lifted" / "schema.py").write_text(SCHEMA)
    train.mkdir()
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["color"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(reference, truth(reference).astype(int))
    (train / "model.pkl").write_bytes(pickle.dumps(model))
    reference.to_parquet(train / "reference.parquet", index=False)
    proba = model.predict_proba(reference)
    pd.DataFrame(
        {"prediction": model.predict(reference), "proba_0": proba[:, 0], "proba_1": proba[:, 1]}
    ).to_parquet(train / "predictions.parquet", index=False)
    training = SimpleNamespace(
        reference_file=train / "reference.parquet",
        predictions_file=train / "predictions.parquet",
        classes=[0, 1],
    )
    settings = SimpleNamespace(monitoring={}, reference="X_train")
    return src, training, settings, dict(MANIFEST)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    src, training, settings, manifest = make(root, rows(300, 0))
    attach(src, training, settings, manifest)
    (src / "nb2prod.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("current")
    fresh = rows(200, 1)
    fresh.to_csv(folder / "fresh.csv", index=False)
    fresh.head(1).to_csv(folder / "one-row.csv", index=False)
    fresh.head(5).to_csv(folder / "five-rows.csv", index=False)
    words = fresh.assign(outcome=np.where(truth(fresh), "yes", "no"))
    words.to_csv(folder / "yes-no.csv", index=False)
    digits = fresh.assign(outcome=np.where(truth(fresh), "1", "0").astype(object))
    digits.loc[:9, "outcome"] = None  # outcomes not known yet
    digits.to_parquet(folder / "digit-strings.parquet")
    # a served bento's log: each line's inputs include `prediction`, and so do its outputs
    sink = Sink(str(folder / "logs"), 2**20, "toy", "v1")
    for i in range(0, 200, 4):
        sink.log("predict", fresh.iloc[i : i + 4], np.array([0, 1, 1, 0]), ["prediction"])
    sink.close()
    with open(min((folder / "logs" / "toy").glob("*.jsonl")), "ab") as fh:
        fh.write(b'{"inputs": {"columns": ["x"], "data": [[1.0]]}, "outputs": []}\n')
        fh.write(b'{"request_id": "\xff"}\n')
    return folder


def cli(*args: Any) -> Any:
    return runner.invoke(app, ["monitor", *map(str, args)])


def assert_exit_2(result: Any, *says: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in says:
        assert text in result.stderr


def test_reference_data_failing_a_custom_check_fails_the_build_with_exit_1(
    tmp_path: Path,
) -> None:
    # Given training data that the notebook's own check `below_fifty` refuses in two rows
    reference = rows(100, 2)
    reference.loc[[3, 7], "x"] = 70.0
    src, training, settings, manifest = make(tmp_path, reference)
    # When monitoring is attached, as the build does after training
    with pytest.raises(ReferenceInvalid) as info:
        attach(src, training, settings, manifest)
    # Then it is a notebook problem (exit 1), in one sentence naming the column and check
    error = info.value
    assert error.exit_code == 1
    assert "reference data `X_train`" in str(error) and "schema Row" in str(error)
    assert "x (check below_fifty: 2 failure(s))" in str(error)
    assert error.fields["columns"] == ["x"] and error.fields["checks"] == ["below_fifty"]
    with pytest.raises(typer.Exit) as exited:
        _run(lambda: attach(src, training, settings, manifest))
    assert exited.value.exit_code == 1


def test_an_input_named_prediction_is_kept_apart_from_the_model_output(
    build: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    result = cli(build, "--current", data / "fresh.csv", "--json", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert [c["column"] for c in summary["columns"]] == ["x", "prediction", "color"]
    assert summary["prediction"]["column"] == "_prediction"  # the model's, computed here
    assert summary["rows"] == 200


def test_logs_with_an_input_named_prediction_and_bad_lines_are_monitored(
    build: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    result = cli(build, "--current", data / "logs", "--json", out)
    assert result.exit_code in (0, 1), result.output  # a verdict, not a crash
    summary = json.loads(out.read_text())
    assert summary["rows"] == 200
    assert summary["prediction"]["column"] == "_prediction"
    assert any(n.startswith("skipped 2 unreadable log line(s)") for n in summary["notes"])
    assert "skipped 2 unreadable log line(s)" in result.stdout


def test_too_few_rows_is_exit_2_unless_min_rows_allows_them(build: Path, data: Path) -> None:
    assert_exit_2(
        cli(build, "--current", data / "one-row.csv"),
        "has 1 row(s), too few for a drift test",
        "at least 30",
        "--min-rows",
    )
    result = cli(build, "--current", data / "five-rows.csv", "--min-rows", "5")
    assert result.exit_code in (0, 1), result.output
    assert "5 current rows" in result.stdout
    assert cli(build, "--current", data / "fresh.csv", "--min-rows", "0").exit_code == 2


def test_a_target_that_is_no_class_is_exit_2_naming_the_column(build: Path, data: Path) -> None:
    assert_exit_2(
        cli(build, "--current", data / "yes-no.csv", "--target", "outcome"),
        "--target outcome: column `outcome` holds `",
        "`yes`",
        "which are not among the model's classes (0, 1)",
    )


def test_a_target_of_classes_written_as_strings_is_scored(build: Path, data: Path) -> None:
    from nb2prod.monitoring.run import monitor

    result = monitor(build, data / "digit-strings.parquet", target="outcome")
    scores = {q["metric"]: q for q in result.quality}
    assert {"accuracy", "f1", "roc_auc"} <= set(scores)
    assert scores["accuracy"]["current"] > 0.8


def test_a_crash_inside_monitor_is_exit_2_in_one_sentence(
    build: Path, data: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(build, broken)
    (broken / "train" / "model.pkl").write_bytes(b"not a pickle")
    assert_exit_2(
        cli(broken, "--current", data / "fresh.csv"),
        f"Could not predict on {data / 'fresh.csv'} with the model of toy:v1",
        "UnpicklingError",
    )
    config = tmp_path / "broken-config"
    shutil.copytree(build, config)
    (config / "src" / "monitoring" / "config.json").write_text("{")
    assert_exit_2(
        cli(config, "--current", data / "fresh.csv"),
        "Could not read the monitoring config and the lifted schema of toy:v1",
        "JSONDecodeError",
    )
