"""The Spark engine's pure parts, without starting Spark: what the archive carries, the
session's settings, how rows are numbered across file splits, how outputs are moved."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from nb2prod.batch import spark, spark_session
from nb2prod.errors import SparkError
from nb2prod.serving import spark_worker as W


def _bento(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "build" / "src"
    (src / "lifted" / "__pycache__").mkdir(parents=True)
    (src / "nb2prod.json").write_text("{}")
    (src / "lifted" / "schema.py").write_text("# schema\n")
    (src / "lifted" / "__pycache__" / "schema.cpython-311.pyc").write_bytes(b"stale")
    (src / "nb2prod_scoring.py").write_text("# an older bento's copy\n")
    train = tmp_path / "build" / "train"
    train.mkdir()
    (train / "model.pkl").write_bytes(b"pickle")
    (train / "model.onnx").write_bytes(b"onnx")
    return src, train / "model.pkl"


def test_the_archive_carries_src_the_model_files_and_the_scorer(tmp_path: Path) -> None:
    src, model = _bento(tmp_path)
    archive = spark.build_archive(src, model, tmp_path / "bento.zip")
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        scorer = z.read("nb2prod_scoring.py").decode()
    assert {"nb2prod.json", "lifted/schema.py", "model.pkl", "model.onnx"} <= names
    assert {"nb2prod_scoring.py", "nb2prod_spark_worker.py"} <= names
    assert not any("__pycache__" in n for n in names)
    assert "model.treelite" not in names  # only the compiled files the bento has
    # the scorer shipped is nb2prod's, not the bento's older copy
    assert scorer == Path(spark.scoring.__file__).read_text()


def test_a_model_of_another_name_goes_in_as_model_pkl(tmp_path: Path) -> None:
    src, _ = _bento(tmp_path)
    other = tmp_path / "store" / "saved_model.pkl"
    other.parent.mkdir()
    other.write_bytes(b"pickle")
    with zipfile.ZipFile(spark.build_archive(src, other, tmp_path / "b.zip")) as z:
        assert z.read("model.pkl") == b"pickle"


def test_the_session_runs_this_interpreter_quietly() -> None:
    conf = spark_session.spark_conf("local[2]", 512)
    assert conf["spark.pyspark.python"] == conf["spark.executorEnv.PYSPARK_PYTHON"]
    assert conf["spark.pyspark.python"] == sys.executable
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.sql.execution.arrow.maxRecordsPerBatch"] == "512"
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("master", "loopback"),
    [
        ("local[*]", True),
        ("spark://127.0.0.1:7077", True),
        ("spark://localhost:7077", True),
        ("spark://10.1.2.3:7077", False),
        ("spark://spark-master.internal:7077", False),
    ],
)
def test_the_driver_binds_to_loopback_only_for_a_local_master(master: str, loopback: bool):
    assert spark_session.loopback(master) is loopback
    assert ("spark.driver.bindAddress" in spark_session.spark_conf(master, 1)) is loopback


def test_an_unreachable_master_is_one_sentence() -> None:
    from tests.support import free_port

    with pytest.raises(SparkError, match="Cannot reach the Spark master"):
        spark_session.reachable(f"spark://127.0.0.1:{free_port()}", timeout=1)
    spark_session.reachable("local[2]")  # nothing to reach


def test_no_java_is_one_sentence_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(SparkError, match="openjdk-17-jre-headless"):
        spark_session.java_version()


def test_splits_are_numbered_in_file_then_offset_order() -> None:
    counts = {(1, 0): 5, (0, 128): 3, (0, 0): 2}
    assert W.offsets(counts) == {(0, 0): 0, (0, 128): 2, (1, 0): 5}


def test_runs_cut_a_batch_where_the_split_changes() -> None:
    files, blocks = [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 9, 9]
    assert W.runs(files, blocks) == [(0, 2), (2, 4), (4, 5), (5, 6)]
    assert W.runs([], []) == []


class _Negatives:
    """A stand-in Scorer: rows with x < 0 are rejected (row = first_row + position)."""

    def score_arrow(self, batch: Any, first_row: int = 0) -> tuple[pa.Table, pa.Table]:
        table = pa.Table.from_batches([batch])
        x = table.column("x").to_pylist()
        good = [i for i, v in enumerate(x) if v >= 0]
        bad = [i for i, v in enumerate(x) if v < 0]
        scored = table.take(good).append_column("prediction", pa.array([2 * x[i] for i in good]))
        rejects = pa.table({"row": pa.array([first_row + i for i in bad], pa.int64())})
        return scored, rejects


def test_a_partition_numbers_rejects_within_each_split_and_counts_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a partition whose batches interleave two splits (file 0 at 0, file 1 at 64),
    # each split's rows in file order
    scored = pa.schema([("x", pa.int64()), ("prediction", pa.int64())])
    union = W.union_schema(scored, pa.schema([("row", pa.int64())]))
    monkeypatch.setitem(W._SCORERS, ("root", "model.pkl", False, None), _Negatives())

    def batch(x: list[int], file: list[int], block: list[int]) -> pa.RecordBatch:
        return pa.record_batch(
            [pa.array(x, pa.int64()), pa.array(file, pa.int32()), pa.array(block, pa.int64())],
            names=["x", W.FILE, W.BLOCK],
        )

    batches = [batch([1, -1, 2], [0, 0, 1], [0, 0, 64]), batch([-3, 4, -5], [1, 1, 1], [64] * 3)]
    # When the worker scores it
    out = pa.Table.from_batches(
        W.score_partition(
            iter(batches), "root", model="model.pkl", proba=False, id_column=None, schema=union
        )
    ).to_pylist()
    # Then each reject is numbered by its position in its split, and each split counted
    rejected = [(r[W.FILE], r[W.BLOCK], r["_r0"]) for r in out if r[W.KIND] == W.REJECTED]
    assert rejected == [(0, 0, 1), (1, 64, 1), (1, 64, 3)]
    scored_x = [r["_s0"] for r in out if r[W.KIND] == W.SCORED]
    assert scored_x == [1, 2, 4]
    counts = {(r[W.FILE], r[W.BLOCK]): r[W.COUNT] for r in out if r[W.KIND] == W.COUNTED}
    assert counts == {(0, 0): 2, (1, 64): 4}
    # and the driver's offsets turn those into input rows: file 0 holds 2 rows before file 1
    first = W.offsets(counts)
    assert [first[(f, b)] + r for f, b, r in rejected] == [1, 3, 5]


def test_an_output_is_replaced_whole(tmp_path: Path) -> None:
    final = tmp_path / "out.parquet"
    final.mkdir()
    (final / "part-old.parquet").write_text("old")
    new = tmp_path / ".out.parquet.nb2prod-1"
    new.mkdir()
    (new / "part-new.parquet").write_text("new")
    spark._replace(new, final)
    assert [p.name for p in final.iterdir()] == ["part-new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_the_counts_give_rows_in_per_split_and_each_kind() -> None:
    groups = [
        {W.KIND: W.COUNTED, W.FILE: 0, W.BLOCK: 0, "n": 1, "c": 5},
        {W.KIND: W.COUNTED, W.FILE: 1, W.BLOCK: 0, "n": 2, "c": 7},
        {W.KIND: W.SCORED, W.FILE: 0, W.BLOCK: 0, "n": 4, "c": None},
        {W.KIND: W.SCORED, W.FILE: 1, W.BLOCK: 0, "n": 7, "c": None},
        {W.KIND: W.REJECTED, W.FILE: 0, W.BLOCK: 0, "n": 1, "c": None},
    ]
    assert W.tally(groups) == ({(0, 0): 5, (1, 0): 7}, 11, 1)
