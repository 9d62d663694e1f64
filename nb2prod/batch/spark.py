"""``nb2prod score --engine spark``: the bento's own Scorer in ``mapInArrow``, local or on a cluster.

``run_spark`` starts (or reuses) a Spark session, ``local[*]`` by default or ``--master
spark://host:7077``, whose executors run this very interpreter (``PYSPARK_PYTHON``), so
their packages are the driver's. The bento travels as one zip added with ``addArchive``:
its ``src/`` files, its model files (``model.pkl``, and ``model.onnx``/``model.treelite``
when it serves compiled), ``nb2prod_scoring.py`` (``serving/scoring.py``) and
``nb2prod_spark_worker.py`` (``serving/spark_worker.py``). The job's function puts the
unpacked archive first on ``sys.path`` and scores each Arrow batch with the worker's one
``Scorer``: the service's validation, lifted features and model, as the local engine does.
It is ``mapInArrow``, not ``mapInPandas``: pandas turns an integer column with nulls into
floats, which a schema may refuse.

Row ids: ``row`` in the rejects is the row's position in the input, its files taken in path
order (Spark's ``_metadata.file_path``) and each file in its own order, as the local
engine's dataset reads them. Spark reads file splits in parallel and in no fixed order, so
each row carries its file's index and its split's offset; the executors count rows per
split and the driver adds each split's first row. With ``--id-column`` the id rides along too.

One scoring pass writes both outputs: the job's rows (scored, rejected and per-split counts)
are persisted on disk once, then written as OUTPUT and the rejects (each a folder of parquet
part files; scored rows follow the input within each part), under hidden temporary names
beside their final paths, moved into place at the end (rejects first, OUTPUT last).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.batch.spark_session import BATCH_ROWS, first_line, session
from nb2prod.bento.locate import model_file
from nb2prod.errors import ScoreError, SparkError
from nb2prod.serving import scoring, spark_worker
from nb2prod.serving.compiled import ONNX_FILE, TREES_FILE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from nb2prod.bento.locate import Bento

log = logging.getLogger(__name__)
WORKER = "nb2prod_spark_worker"  # the executor's module, by its name in the archive
SHIPPED = {"nb2prod_scoring.py": scoring.__file__, f"{WORKER}.py": spark_worker.__file__}


def model_files(model: Path) -> list[Path]:
    """The model file and the compiled files beside it, those that exist."""
    return [model] + [p for n in (ONNX_FILE, TREES_FILE) if (p := model.with_name(n)).is_file()]


def build_archive(src: Path, model: Path, dest: Path) -> Path:
    """Zip what the executors need: ``src/``'s files, the model files, the scorer modules.

    The model goes in as ``model.pkl`` whatever its own name (the compiled files keep
    theirs: ``nb2prod_compiled`` looks for them beside it).
    """
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(src.rglob("*")):
            relative = path.relative_to(src).as_posix()
            if path.is_file() and "__pycache__" not in relative and relative not in SHIPPED:
                archive.write(path, relative)
        for path in model_files(model):
            name = "model.pkl" if path == model else path.name
            archive.write(path, name)
        for name, source in SHIPPED.items():
            archive.write(source, name)
    return dest


def _function(archive: str, options: dict[str, Any]) -> Any:
    """The mapInArrow function. Pickled by value (it is a closure): it names nothing of
    nb2prod, so an executor needs only the archive."""

    def score_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import importlib
        import os

        from pyspark import SparkFiles

        root = SparkFiles.get(archive)
        worker = sys.modules.get("nb2prod_spark_worker")
        old = os.path.dirname(getattr(worker, "__file__", None) or "")
        if worker is not None and old != root:  # a reused worker that scored another bento
            for name, module in list(sys.modules.items()):
                if (getattr(module, "__file__", None) or "").startswith(old + os.sep):
                    del sys.modules[name]
            sys.path[:] = [p for p in sys.path if p != old]
            worker = None
        if worker is None:
            sys.path.insert(0, root)
            importlib.invalidate_caches()
            worker = importlib.import_module("nb2prod_spark_worker")
        return worker.score_partition(batches, root, **options)

    return score_partition


def _read(spark: SparkSession, input: Path | str) -> DataFrame:
    """INPUT as the local engine reads it: every file under a folder (path order, hidden ones
    skipped), CSV (a header row; ``.tsv`` tab-separated) when they all are, else parquet."""
    from pyspark.sql import functions as F

    text = str(input)
    local = "://" not in text
    if local and not Path(text).exists():
        raise ScoreError(f"The input {text} does not exist.")
    path = Path(text)
    names = [text.lower()]
    if local and path.is_dir():
        names = [p.name.lower() for p in path.rglob("*") if p.is_file()]
        names = [n for n in names if not n.startswith((".", "_"))]
    csv = bool(names) and all(n.endswith((".csv", ".csv.gz", ".tsv")) for n in names)
    tab = csv and all(n.endswith(".tsv") for n in names)
    where = path.resolve().as_uri() if local else text
    reader = spark.read.option("recursiveFileLookup", "true")
    try:
        if csv:
            options = {"header": True, "inferSchema": True, "sep": "\t" if tab else ","}
            df = reader.options(**options).csv(where)
            # whole numbers as int64, as pyarrow's CSV reader (the local engine) types them
            ints = {f.name for f in df.schema.fields if f.dataType.typeName() == "integer"}
            columns = [(F.col(f"`{c}`"), c) for c in df.columns]
            return df.select(
                *[col.cast("long").alias(c) if c in ints else col for col, c in columns]
            )
        return reader.parquet(where)
    except Exception as exc:  # AnalysisException: not parquet, no files
        raise ScoreError(f"Spark cannot read the input {text}: {first_line(exc)}.") from exc


def schemas(df_schema: Any, src: Path, proba: bool, id_column: str | None) -> tuple[Any, Any]:
    """The scored and rejects arrow schemas for input of ``df_schema`` (a Spark StructType)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    inputs = to_arrow_schema(df_schema)
    kept = [inputs.field(id_column)] if id_column else list(inputs)
    added = [pa.field(name, kind) for name, kind in scoring.output_schema(src, proba)]
    scored = pa.schema([*kept, *added])
    return scored, scoring.rejects_schema(inputs.field(id_column) if id_column else None)


def run_spark(
    bento: Bento,
    input: Path | str,
    output: Path,
    rejects: Path,
    *,
    master: str | None = None,
    batch_rows: int = BATCH_ROWS,
    id_column: str | None = None,
    proba: bool = False,
) -> tuple[int, int, int]:
    """Score ``input`` on Spark into ``output`` and ``rejects``: (rows in, scored, rejected).

    Raises:
        ScoreError: the input cannot be read or lacks a column the bento takes.
        SparkError: Spark cannot start, or the job failed.
    """
    output, rejects = Path(output).resolve(), Path(rejects).resolve()
    for path in (output, rejects):
        if not path.parent.is_dir():
            raise ScoreError(f"The folder of {path} does not exist.")
    model = model_file(bento)
    with (
        session(master, batch_rows) as spark,
        tempfile.TemporaryDirectory(prefix="nb2prod-archive-") as tmp,
    ):
        df = _read(spark, input)
        known = scoring.constants(bento.src / "service.py")
        wanted = list(known.get("INPUT_COLUMNS") or bento.manifest["reference"]["columns"])
        missing = [c for c in [*wanted, *([id_column] if id_column else [])] if c not in df.columns]
        if missing:
            raise ScoreError(
                f"The input {input} lacks column(s) {', '.join(missing)} of {bento.tag}.",
                columns=missing,
            )
        name = f"bento-{uuid.uuid4().hex[:12]}"
        archive = build_archive(bento.src, model, Path(tmp) / f"{name}.zip")
        spark.sparkContext.addArchive(f"{archive}#{name}")
        return _score(spark, df, bento, name, output, rejects, proba, id_column)


def _score(
    spark: SparkSession,
    df: DataFrame,
    bento: Bento,
    archive: str,
    output: Path,
    rejects: Path,
    proba: bool,
    id_column: str | None,
) -> tuple[int, int, int]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    W = spark_worker
    scored_schema, rejects_schema = schemas(df.schema, bento.src, proba, id_column)
    union = W.union_schema(scored_schema, rejects_schema)
    path = F.col("_metadata.file_path")
    files = sorted(r[0] for r in df.select(path.alias("f")).distinct().collect())
    pairs = [c for i, p in enumerate(files) for c in (F.lit(p), F.lit(i))]
    index = F.create_map(*pairs)[path] if files else F.lit(0)
    tagged = df.select(
        *[F.col(f"`{c}`") for c in df.columns],
        index.cast("int").alias(W.FILE),
        F.col("_metadata.file_block_start").alias(W.BLOCK),
    )
    options = {"model": "model.pkl", "proba": proba, "id_column": id_column, "schema": union}
    out = tagged.mapInArrow(_function(archive, options), from_arrow_schema(union))
    out = out.persist(StorageLevel.DISK_ONLY)
    try:
        started = time.perf_counter()
        counted = _run(lambda: out.groupBy(W.KIND, W.FILE, W.BLOCK).agg(
            F.count(F.lit(1)).alias("n"), F.sum(W.COUNT).alias("c")).collect())  # fmt: skip
        per_split, n_scored, n_rejected = W.tally([r.asDict() for r in counted])
        rows_in = sum(per_split.values())
        if rows_in != n_scored + n_rejected:
            raise SparkError(
                f"Spark scored {n_scored} and rejected {n_rejected} of {rows_in} rows: some "
                "were lost (a bug in nb2prod)."
            )
        log.debug("%d rows scored in %.1f s", rows_in, time.perf_counter() - started)
        first = W.offsets(per_split)
        starts = spark.createDataFrame(
            [(f, b, s) for (f, b), s in first.items()] or [(0, 0, 0)],
            f"`{W.FILE}` int, `{W.BLOCK}` long, `__first__` long",
        )
        scored = out.filter(F.col(W.KIND) == W.SCORED).select(
            *[F.col(f"_s{i}").alias(f.name) for i, f in enumerate(scored_schema)]
        )
        refused = out.filter(F.col(W.KIND) == W.REJECTED).join(
            F.broadcast(starts), [W.FILE, W.BLOCK]
        )
        columns = [F.col(f"_r{i}").alias(f.name) for i, f in enumerate(rejects_schema)]
        columns[0] = (F.col("_r0") + F.col("__first__")).alias(rejects_schema[0].name)
        refused = refused.select(*columns).orderBy(rejects_schema[0].name)
        started = time.perf_counter()
        _write(scored, refused, output, rejects)
        log.debug("written in %.1f s", time.perf_counter() - started)
    finally:
        out.unpersist()
    return rows_in, n_scored, n_rejected


def _run(action: Any) -> Any:
    try:
        return action()
    except Exception as exc:  # Py4JJavaError, PythonException: the executor's own words
        raise SparkError(f"The Spark job failed: {first_line(exc)}.") from exc


def _write(scored: DataFrame, refused: DataFrame, output: Path, rejects: Path) -> None:
    """Both outputs under hidden names beside their final paths, then moved into place."""
    temps = [p.with_name(f".{p.name}.nb2prod-{uuid.uuid4().hex[:8]}") for p in (output, rejects)]
    try:
        _run(lambda: refused.write.parquet(temps[1].as_uri()))
        _run(lambda: scored.write.parquet(temps[0].as_uri()))
        _replace(temps[1], rejects)
        _replace(temps[0], output)
    finally:
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def _replace(new: Path, final: Path) -> None:
    """``final`` becomes ``new``: an old file or folder there is moved aside, then removed."""
    old = final.with_name(f".{final.name}.nb2prod-old-{uuid.uuid4().hex[:8]}")
    if final.exists() or final.is_symlink():
        os.replace(final, old)
    os.replace(new, final)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    old.unlink(missing_ok=True)
