"""nb2prod score's library and local engine (batch/score.py, batch/local.py) and the Scorer
(serving/scoring.py), on a bento lifted in-process: every row scored or rejected with the
failures its 422 lists, the service's answers, atomic output, exit codes."""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from nb2prod.batch.local import BENTO_MODULES
from nb2prod.batch.score import rejects_path, score
from nb2prod.bento.locate import load_pipeline, open_bento
from nb2prod.cli import app
from nb2prod.errors import ScoreError
from nb2prod.serving import scoring, validation
from tests.support import PROPS, lift_in_process

BAD = {5: ("age", 10), 7: ("plan", "gold"), 9: ("visits_per_month", 1e-320)}


@pytest.fixture(scope="module")
def gym(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gym-renewal classifier (a ratio that is infinite at the schema's edge), lifted."""
    work = tmp_path_factory.mktemp("score") / "gym-work"
    lift_in_process(PROPS / "ratio_overflow.ipynb", work)
    return work


def _rows(gym: Path, n: int = 300) -> pd.DataFrame:
    reference = pd.read_parquet(gym / "train" / "reference.parquet")
    frame = pd.concat([reference] * (n // len(reference) + 1), ignore_index=True).head(n)
    for row, (column, value) in BAD.items():
        frame.loc[row, column] = value  # 10 < 16, not a plan, an infinite fee per visit
    frame.insert(0, "member_id", [f"m{i:05d}" for i in range(n)])  # not an input: kept
    return frame


def _expected(gym: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's own answers on the lifted features of the good rows."""
    with open_bento(gym) as bento:
        pipeline = load_pipeline(bento.src, bento.manifest)
        with open(bento.model_file, "rb") as fh:
            model = pickle.load(fh)
        columns = bento.manifest["reference"]["columns"]
    good = frame.drop(index=list(BAD))[columns]
    features = pipeline.entrypoint(pipeline.input_schema.validate(good))
    return model.predict(features), model.predict_proba(features)


def test_every_row_is_scored_or_rejected_with_the_services_answer(
    gym: Path, tmp_path: Path
) -> None:
    # Given 300 rows with three bad ones, in batches of 64 rows
    frame = _rows(gym)
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    seen = []
    # When they are scored with an id column and probabilities
    result = score(
        gym, tmp_path / "rows.parquet", tmp_path / "out.parquet", batch_rows=64,
        id_column="member_id", proba=True, progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    # Then every row is in the output or in the rejects file, and the counts say so
    assert (result.rows_in, result.rows_scored, result.rows_rejected) == (300, 297, 3)
    assert result.rejects == tmp_path / "out.rejects.parquet" and result.exit_code == 1
    assert seen[0] == (64, 300) and seen[-1] == (300, 300) and result.rows_per_s > 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["member_id", "prediction", "proba_0", "proba_1", "model_version"]
    assert list(out["member_id"]) == list(frame.drop(index=list(BAD))["member_id"])
    # and the scored rows get the model's own answers on the lifted features
    prediction, proba = _expected(gym, frame)
    assert np.array_equal(out["prediction"], prediction) and out["prediction"].dtype == "int64"
    assert np.allclose(out[["proba_0", "proba_1"]], proba, rtol=0, atol=1e-12)
    assert set(out["model_version"]) == {result.model_version}
    # and each reject carries its row, its id and the failures its 422 lists when sent alone
    rejects = pd.read_parquet(result.rejects)
    assert list(rejects.columns) == ["row", "member_id", "status", "failures", "error"]
    assert list(rejects["row"]) == list(BAD) and list(rejects["member_id"]) == [
        "m00005",
        "m00007",
        "m00009",
    ]
    with open_bento(gym) as bento:
        schema = load_pipeline(bento.src, bento.manifest).input_schema
        columns = bento.manifest["reference"]["columns"]
    for reject in rejects.head(2).itertuples():
        row = frame[columns].iloc[[reject.row]].astype(object).to_dict(orient="records")
        _, failures = validation.validate(schema, row, columns)
        assert reject.status == 422 and json.loads(reject.failures) == list(failures) != []
    assert json.loads(rejects["failures"][2]) == [
        {"row": 0, "column": "fee_per_visit", "check": "finite feature", "value": None}
    ]
    # and the bento's modules were let go of: one bento per run, no leftovers
    assert not [n for n in sys.modules if n.split(".")[0] in BENTO_MODULES]
    assert str(gym / "src") not in sys.path


def test_csv_a_parquet_folder_and_any_batch_size_give_the_same_answers(
    gym: Path, tmp_path: Path
) -> None:
    frame = _rows(gym, 200)
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, 200, 70)):
        frame.iloc[start : start + 70].to_parquet(folder / f"part-{i}.parquet", index=False)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    results = {}
    for name, source, rows in [
        ("file", tmp_path / "rows.parquet", 1000),
        ("folder", folder, 33),
        ("csv", tmp_path / "rows.csv", 7),
    ]:
        result = score(gym, source, tmp_path / f"{name}.parquet", batch_rows=rows)
        assert (result.rows_in, result.rows_scored, result.rows_rejected) == (200, 197, 3)
        results[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert list(pd.read_parquet(result.rejects)["row"]) == list(BAD)
    # every input column is kept, in order, without an id column
    assert list(results["file"].columns) == [*frame.columns, "prediction", "model_version"]
    pd.testing.assert_frame_equal(results["file"], results["folder"])
    assert np.array_equal(results["file"]["prediction"], results["csv"]["prediction"])
    assert list(results["csv"]["member_id"]) == list(results["file"]["member_id"])


def test_the_pandas_entry_numbers_rejects_from_the_first_row_it_is_given(gym: Path) -> None:
    frame = _rows(gym, 40)
    sys.path.insert(0, str(gym / "src"))
    try:
        scorer = scoring.Scorer(gym / "src", gym / "train" / "model.pkl", id_column="member_id")
        scored, rejects = scorer.score(frame, first_row=1000)
        by_arrow, _ = scorer.score_arrow(pa.Table.from_pandas(frame, preserve_index=False))
    finally:
        sys.path.remove(str(gym / "src"))
        for name in [n for n in sys.modules if n.split(".")[0] in BENTO_MODULES]:
            del sys.modules[name]
    assert list(rejects["row"]) == [1005, 1007, 1009] and len(scored) == 37
    assert scored.equals(by_arrow.to_pandas())
    # the columns Spark is told about are the ones written
    added = scoring.output_schema(gym / "src", proba=False)
    assert [(n, str(t)) for n, t in added] == [("prediction", "int64"), ("model_version", "string")]


def test_the_columnar_path_answers_as_the_requests_do(
    gym: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given rows Pandera can judge as one frame, and rows it must not: a null where the
    # schema allows none, NaN, an int past 2**53, a null in an int column
    frame = _rows(gym, 400)
    frame["age"] = frame["age"].astype("Int64")
    frame.loc[20, "monthly_fee"] = None
    frame.loc[21, "plan"] = None
    frame.loc[22, "age"] = 2**60
    frame.loc[23, "age"] = None
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    table = pq.read_table(tmp_path / "rows.parquet")
    table = table.set_column(2, "visits_per_month", pa.array(
        [float("nan") if i == 24 else v for i, v in enumerate(table["visits_per_month"].to_pylist())]
    ))  # fmt: skip
    pq.write_table(table, tmp_path / "rows.parquet")
    sys.path.insert(0, str(gym / "src"))
    try:
        scorer = scoring.Scorer(gym / "src", gym / "train" / "model.pkl", proba=True)
        accepted, rest = scorer.columnar(table.select(scorer.columns))
    finally:
        sys.path.remove(str(gym / "src"))
        for name in [n for n in sys.modules if n.split(".")[0] in BENTO_MODULES]:
            del sys.modules[name]
    # Then the frame takes every row but those, and the rows its failures named
    assert rest == [5, 7, 20, 21, 22, 23, 24] and len(accepted[0][1]) == 393
    # and scoring with it gives exactly the answers of the requests' way alone
    fast = score(gym, tmp_path / "rows.parquet", tmp_path / "fast.parquet", proba=True)
    monkeypatch.setattr(scoring.Scorer, "columnar", lambda self, t: ([], list(range(len(t)))))
    slow = score(gym, tmp_path / "rows.parquet", tmp_path / "slow.parquet", proba=True)
    assert fast.rows_rejected == slow.rows_rejected == 8  # and 9: its fee per visit is infinite
    pd.testing.assert_frame_equal(pd.read_parquet(fast.output), pd.read_parquet(slow.output))
    pd.testing.assert_frame_equal(pd.read_parquet(fast.rejects), pd.read_parquet(slow.rejects))


def test_a_row_the_notebooks_code_raises_on_is_rejected_alone(
    gym: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a model path that raises on one row (a bug in the notebook's code, say)
    frame = _rows(gym, 100)
    frame.loc[42, "age"] = 99
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    predict = scoring.Scorer.predict

    def fragile(self: scoring.Scorer, part: pd.DataFrame, proba: bool) -> dict:
        if (part["age"] == 99).any():
            raise ZeroDivisionError("division by zero")
        return predict(self, part, proba)

    monkeypatch.setattr(scoring.Scorer, "predict", fragile)
    result = score(gym, tmp_path / "rows.parquet", tmp_path / "out.parquet", max_reject_rate=0.05)
    # Then that row alone is rejected as the service's 500, and the others are scored
    rejects = pd.read_parquet(result.rejects)
    assert list(rejects["row"]) == [5, 7, 9, 42] and result.rows_scored == 96
    assert (
        rejects["status"][3] == 500 and rejects["error"][3] == "ZeroDivisionError: division by zero"
    )
    assert result.exit_code == 0  # 4% rejected, under 5%


def test_a_run_that_fails_midway_leaves_no_output(
    gym: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _rows(gym, 300)
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    (tmp_path / "out.parquet").write_bytes(b"the last run's output")

    # a Ctrl-C after the second batch
    def interrupt(done: int, total: int | None) -> None:
        if done >= 128:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score(
            gym,
            tmp_path / "rows.parquet",
            tmp_path / "out.parquet",
            batch_rows=64,
            progress=interrupt,
        )
    assert (tmp_path / "out.parquet").read_bytes() == b"the last run's output"
    assert not rejects_path(tmp_path / "out.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "rows.parquet"]

    # a disk that fills up on the third batch
    write = pq.ParquetWriter.write_table
    calls = []

    def full(self: pq.ParquetWriter, table: pa.Table, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.raises(ScoreError, match=r"Cannot write .*new\.parquet: .*No space left"):
        score(gym, tmp_path / "rows.parquet", tmp_path / "new.parquet", batch_rows=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "rows.parquet"]


def test_an_input_with_no_bad_row_exits_0_and_still_writes_an_empty_rejects_file(
    gym: Path, tmp_path: Path
) -> None:
    frame = _rows(gym, 50).drop(index=list(BAD))
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    out = tmp_path / "out.parquet"
    result = runner_score(
        gym, tmp_path / "rows.parquet", out, "--rejects", str(tmp_path / "bad.parquet")
    )
    assert result.exit_code == 0, result.output
    assert "rows in   47" in result.stdout and "rejected  0 (0.00%)" in result.stdout
    assert pq.read_table(tmp_path / "bad.parquet").num_rows == 0
    assert pq.read_table(out).num_rows == 47


def runner_score(gym: Path, *args: object) -> object:
    return CliRunner().invoke(app, ["score", str(gym), *map(str, args)])


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        ("missing-column", r"The input .*rows\.parquet lacks input column\(s\) of .*: plan\."),
        ("no-id", r"The input .*rows\.parquet lacks the id column: customer\."),
        ("garbage", r"Cannot read the input .*rows\.parquet as parquet: "),
        ("absent", r"The input .*absent\.parquet does not exist\."),
        ("batch", r"--batch-rows must be at least 1, not 0\."),
        ("rate", r"--max-reject-rate must be between 0 and 1, not 5\.0\."),
        ("engine", r"--engine must be one of local, spark, not 'gpu'\."),
    ],
)
def test_bad_arguments_and_unreadable_input_exit_2_in_one_sentence(
    gym: Path, tmp_path: Path, change: str, sentence: str
) -> None:
    rows = tmp_path / "rows.parquet"
    frame = _rows(gym, 20)
    (frame.drop(columns=["plan"]) if change == "missing-column" else frame).to_parquet(rows)
    if change == "garbage":
        rows.write_bytes(b"PAR1 not really")
    args = {
        "no-id": ["--id-column", "customer"],
        "batch": ["--batch-rows", "0"],
        "rate": ["--max-reject-rate", "5"],
        "engine": ["--engine", "gpu"],
    }.get(change, [])
    source = tmp_path / "absent.parquet" if change == "absent" else rows
    result = runner_score(gym, source, tmp_path / "out.parquet", *args)
    assert result.exit_code == 2, result.output
    error = " ".join(result.stderr.split())
    assert error.startswith("error: ") and len(result.stderr.strip().splitlines()) <= 3, error
    assert re.search(sentence, error), error
    assert not (tmp_path / "out.parquet").exists()
