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
PASSENGERS = Path(__file__).resolve().parent.parent / "fixtures" / "monitoring"


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


# --- a passenger table: an id, a free-text name and a ticket number among the inputs -------


def passenger_build(root: Path, reference: pd.DataFrame, monitoring: dict) -> Path:
    """A hand-made build of the passenger fixture's schema, its model fit on the raw rows."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from nb2prod.notebook.read import read

    schema = read(PASSENGERS / "passengers.ipynb").with_role("schema")[0].source
    src, train = root / "src", root / "train"
    (src / "lifted").mkdir(parents=True)
    (src / "lifted" / "__init__.py").write_text("")
    (src / "lifted" / "schema.py").write_text(schema)
    train.mkdir()
    inputs, survived = reference.drop(columns="Survived"), reference["Survived"]
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="S"), OneHotEncoder(handle_unknown="ignore")
    )
    model = make_pipeline(
        make_column_transformer(
            (categories, ["Sex", "Embarked"]),
            (SimpleImputer(), ["Pclass", "Age", "Fare", "SibSp", "Parch"]),
        ),
        LogisticRegression(max_iter=500),
    ).fit(inputs, survived)
    (train / "model.pkl").write_bytes(pickle.dumps(model))
    inputs.to_parquet(train / "reference.parquet", index=False)
    proba = model.predict_proba(inputs)
    pd.DataFrame(
        {"prediction": model.predict(inputs), "proba_0": proba[:, 0], "proba_1": proba[:, 1]}
    ).to_parquet(train / "predictions.parquet", index=False)
    training = SimpleNamespace(
        reference_file=train / "reference.parquet",
        predictions_file=train / "predictions.parquet",
        classes=[0, 1],
    )
    settings = SimpleNamespace(monitoring=monitoring, reference="X_train")
    manifest = {**MANIFEST, "name": "titanic", "tag": "titanic:v1", "input_schema": "Passenger"}
    attach(src, training, settings, manifest)
    (src / "nb2prod.json").write_text(json.dumps(manifest))
    return root


def test_a_fresh_sample_with_an_id_and_free_text_exits_0_naming_what_it_left_out(
    tmp_path: Path,
) -> None:
    from tests.fixtures.monitoring.passengers import passengers

    # Given a build whose inputs carry PassengerId, Name and Ticket, all new in every batch
    build = passenger_build(tmp_path / "build", passengers(700, 0), {"ignore": ["Parch"]})
    fresh, shifted = tmp_path / "fresh.csv", tmp_path / "shifted.csv"
    passengers(400, 21, start=701).to_csv(fresh, index=False)
    passengers(400, 22, start=1101, shifted=True).to_csv(shifted, index=False)
    # When a fresh sample of the training distribution is monitored
    out = tmp_path / "fresh.json"
    result = cli(build, "--current", fresh, "--json", out)
    # Then it is no drift, and says which columns it left out and why
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert [(c["name"], c["reason"]) for c in summary["left_out"]] == [
        ("PassengerId", "id-like"),
        ("Name", "free-text"),
        ("Parch", "ignored"),
        ("Ticket", "id-like"),
    ]  # in column order
    assert [c["column"] for c in summary["columns"]] == [
        "Pclass", "Sex", "Age", "SibSp", "Fare", "Embarked"
    ]  # fmt: skip
    said = " ".join(result.stdout.split())  # Rich wraps long lines
    assert "left out of drift: PassengerId (detected as ID-like: 700 distinct" in said
    assert "Name (detected as free text: " in said
    assert "Parch (ignored by setting nb2prod.monitoring.ignore)" in said
    # And a shifted sample is drift
    assert cli(build, "--current", shifted).exit_code == 1


def test_a_constant_column_leaves_stderr_clean(tmp_path: Path) -> None:
    import subprocess
    import sys

    # Given a reference of over 1000 rows (Wasserstein: it divides by the spread) and a batch
    # where `prediction` (an input) never varies
    reference = rows(1200, 3).assign(prediction=0.5)
    src, training, settings, manifest = make(tmp_path, reference)
    attach(src, training, settings, manifest)
    (src / "nb2prod.json").write_text(json.dumps(manifest))
    rows(200, 4).assign(prediction=0.5).to_csv(tmp_path / "constant.csv", index=False)
    # When the real command runs, Then numpy's and scipy's 0/0 warnings stay out of stderr
    command = [sys.executable, "-m", "nb2prod.cli", "monitor", str(tmp_path)]
    done = subprocess.run(
        [*command, "--current", str(tmp_path / "constant.csv")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift" in done.stdout
    assert done.stderr == ""
