"""The batch case: ``nb2prod score`` against the in-process ceiling, Spark, memory and first row.

- **Ceiling.** Per notebook (both examples and the untuned one), a subprocess of its own
  (``python -m benchmarks.batch measure``) scores one parquet input with the local engine
  (``batch.score.score``, the whole call: open the bento, load the Scorer, read, validate,
  features, model, write) and, in alternating rounds, runs what hand-written code would: the
  lifted features and the pickled model's ``predict`` on the same rows, already in memory as
  pandas batches of the same size, with the bento's thread setting. Rows/s of each, median
  over the rounds; the local engine's is reported as a fraction of the ceiling's. A third
  turn in each round is that script with its I/O (read the parquet batch by batch, features,
  ``predict``, write ``id`` and the prediction): context, with no target. A fourth is the
  ceiling with the bento's own model (``nb2prod_compiled``'s where the bento serves compiled:
  complete rows by ONNX Runtime or Treelite, the others by the pickle): how much of the gap
  is the model runtime, not the engine. Context too.
- **Spark.** In the same subprocess, for churn: a ``local[2]`` session started once, then
  ``score(engine="spark")`` and ``score(engine="local")`` on the same input, alternating.
- **Memory.** ``nb2prod score`` as a process of its own on a 10M-row parquet (written in
  chunks of 500,000 rows, 250,000-row row groups, never whole in memory), its peak RSS from
  ``os.wait4`` (that child's own ``ru_maxrss``), its rows/s from ``--json``.
- **First row.** From ``Popen`` until the first scored rows are on disk: for the local engine
  the temporary output (``.NAME.<pid>.tmp``) grows past its 4-byte header (the first batch's
  row group, written when that batch is scored); for Spark, the first non-empty ``part-*``
  file under the hidden temporary output folder. The output itself appears only at the end
  (atomically), so the time to the complete output is reported beside it.

Every input is drawn (with replacement, fixed seed) from the bento's reference rows (its
``monitoring/reference.parquet``: the notebook's own inputs), with an ``id`` column added.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROWS = 200_000  # rows per notebook for the ceiling and the local engine, at scale 1
SPARK_ROWS = 200_000  # rows of the Spark-vs-local input (churn), at scale 1
RSS_ROWS = 10_000_000  # rows of the memory case, at scale 1
BATCH_ROWS = 50_000  # nb2prod score's default
ROUNDS = 3
SPARK_ROUNDS = 2  # a Spark run of SPARK_ROWS takes ~10 s here
CHUNK = 500_000  # rows generated and written at a time
ROW_GROUP = 250_000


def make_input(reference: Path, out: Path, rows: int, seed: int = 0) -> Path:
    """``rows`` rows drawn from ``reference`` (with an ``id`` column), written chunk by chunk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.read_table(reference).replace_schema_metadata(None)
    rng = np.random.default_rng(seed)
    schema = pa.schema([pa.field("id", pa.int64()), *source.schema])
    with pq.ParquetWriter(out, schema) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            chunk = source.take(pa.array(rng.integers(0, source.num_rows, n)))
            ids = pa.array(np.arange(start, start + n, dtype=np.int64))
            writer.write_table(chunk.add_column(0, "id", ids), row_group_size=ROW_GROUP)
    return out


# -- in the measuring subprocess -----------------------------------------------------------


def _ceiling_batches(src: Path, input: Path, batch_rows: int) -> tuple[Any, Any, list, int, Any]:
    """The lifted entry point, the pickled model, the input as pandas batches, the threads,
    and the model the bento serves."""
    import pickle

    import pyarrow.parquet as pq

    from nb2prod.bento.locate import load_pipeline
    from nb2prod.serving.scoring import constants

    manifest = json.loads((src / "nb2prod.json").read_text())
    known = constants(src / "service.py")
    columns = list(known.get("INPUT_COLUMNS") or manifest["reference"]["columns"])
    entry = load_pipeline(src, manifest).entrypoint or (lambda frame: frame)
    with open(src.parent / "train" / "model.pkl", "rb") as fh:
        model = pickle.load(fh)
    reader = pq.ParquetFile(input)
    frames = [b.to_pandas() for b in reader.iter_batches(batch_size=batch_rows, columns=columns)]
    threads = int(known.get("MODEL_THREADS", 1))
    served = model
    if (manifest.get("serving") or {}).get("runtime") == "compiled":
        from nb2prod.serving import compiled

        served = compiled.load(src.parent / "train" / "model.pkl", model, threads=threads)
    return entry, model, frames, threads, served


def _ceiling_round(entry: Any, model: Any, frames: list, threads: int) -> float:
    from threadpoolctl import threadpool_limits

    rows = sum(len(f) for f in frames)
    with threadpool_limits(threads):
        start = time.perf_counter()
        for frame in frames:
            model.predict(entry(frame))
        return rows / (time.perf_counter() - start)


def _script_round(entry: Any, model: Any, input: Path, out: Path, batch_rows: int, threads: int):
    """Rows/s of the hand-written script, I/O included: read the parquet in batches, lifted
    features, ``predict``, write ``id`` and the prediction (no validation, no rejects)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    rows, writer = 0, None
    with threadpool_limits(threads):
        start = time.perf_counter()
        for batch in pq.ParquetFile(input).iter_batches(batch_size=batch_rows):
            frame = batch.to_pandas()
            predicted = model.predict(entry(frame.drop(columns="id")))
            table = pa.table({"id": frame["id"].to_numpy(), "prediction": predicted})
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += len(frame)
        if writer is not None:
            writer.close()
        return rows / (time.perf_counter() - start)


def _score_round(bento: Path, input: Path, out: Path, **options: Any) -> dict[str, Any]:
    from nb2prod.batch.score import score

    marks: list[tuple[float, int]] = []  # (time, rows done) after each batch

    def progress(done: int, total: int | None) -> None:
        marks.append((time.perf_counter(), done))

    start = time.perf_counter()
    result = score(bento, input, out, id_column="id", progress=progress, **options)
    seconds = time.perf_counter() - start
    (t0, n0), (t1, n1) = (marks[0], marks[-1]) if marks else ((start, 0), (start, 0))
    return {
        "rows_per_s": result.rows_in / seconds,
        "seconds": seconds,
        "first_batch_s": t0 - start if marks else None,
        "streaming_rows_per_s": (n1 - n0) / (t1 - t0) if t1 > t0 else None,
        "rows_in": result.rows_in,
        "rows_scored": result.rows_scored,
        "rows_rejected": result.rows_rejected,
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rows_per_s"] for r in runs]
    return {"rows_per_s": statistics.median(rates), "rounds": rates, "last": runs[-1]}


def measure(bento: Path, input: Path, work: Path, rounds: int, spark_input: Path | None) -> dict:
    """The ceiling and the local engine alternating; then Spark and local, alternating."""
    src = bento / "src"
    out = work / "scored.parquet"
    warm = _score_round(bento, input, out, batch_rows=BATCH_ROWS)  # imports, first model call
    entry, model, frames, threads, served = _ceiling_batches(src, input, BATCH_ROWS)
    _ceiling_round(entry, model, frames[:1], threads)
    _ceiling_round(entry, served, frames[:1], threads)
    local, ceiling, script, own = [], [], [], []
    for _ in range(rounds):
        local.append(_score_round(bento, input, out, batch_rows=BATCH_ROWS))
        ceiling.append(_ceiling_round(entry, model, frames, threads))
        own.append(_ceiling_round(entry, served, frames, threads))
        script.append(
            _script_round(entry, model, input, work / "script.parquet", BATCH_ROWS, threads)
        )
    result: dict[str, Any] = {
        "rows": warm["rows_in"],
        "batch_rows": BATCH_ROWS,
        "model_threads": threads,
        "local": _median(local),
        "ceiling": {"rows_per_s": statistics.median(ceiling), "rounds": ceiling},
        "script_with_io": {"rows_per_s": statistics.median(script), "rounds": script},
        "ceiling_served_model": {"rows_per_s": statistics.median(own), "rounds": own},
    }
    rate = result["local"]["rows_per_s"]
    result["fraction_of_ceiling"] = rate / result["ceiling"]["rows_per_s"]
    result["fraction_of_served_model_ceiling"] = rate / result["ceiling_served_model"]["rows_per_s"]
    del frames
    if spark_input is not None:
        result["spark"] = _measure_spark(bento, spark_input, work, SPARK_ROUNDS)
    return result


def _measure_spark(bento: Path, input: Path, work: Path, rounds: int) -> dict[str, Any]:
    from nb2prod.batch.spark import session

    master = "local[2]"
    start = time.perf_counter()
    spark_runs, local_runs = [], []
    with session(master) as spark:
        started = time.perf_counter() - start
        _score_round(bento, input, work / "spark-warm", engine="spark")  # the first job's JIT
        for _ in range(rounds):
            spark_runs.append(_score_round(bento, input, work / "spark-out", engine="spark"))
            local_runs.append(_score_round(bento, input, work / "local.parquet"))
        parallelism = spark.sparkContext.defaultParallelism
    spark_rate = statistics.median(r["rows_per_s"] for r in spark_runs)
    local_rate = statistics.median(r["rows_per_s"] for r in local_runs)
    return {
        "master": master,
        "default_parallelism": parallelism,
        "session_start_s": started,
        "rows": spark_runs[-1]["rows_in"],
        "spark": _median(spark_runs),
        "local": _median(local_runs),
        "spark_over_local": spark_rate / local_rate,
    }


# -- from the bench ------------------------------------------------------------------------


def run_measure(bento: Path, input: Path, work: Path, spark_input: Path | None) -> dict:
    """``measure`` in a subprocess of its own (one bento per process: its module names)."""
    cmd = [sys.executable, "-m", "benchmarks.batch", "measure", str(bento), str(input), str(work)]
    cmd += [str(spark_input)] if spark_input else []
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-3000:]}
    return json.loads(lines[-1])


def _first_file(patterns: list[tuple[Path, str]], minimum: int) -> bool:
    for folder, pattern in patterns:
        for path in folder.glob(pattern):
            try:
                if path.is_file() and path.stat().st_size > minimum:
                    return True
            except FileNotFoundError:
                continue
    return False


def timed_cli(bento: Path, input: Path, output: Path, *extra: str) -> dict[str, Any]:
    """``nb2prod score`` as a process: first scored rows on disk, whole run, peak RSS, summary."""
    cli = Path(sys.executable).parent / "nb2prod"
    cmd = [str(cli), "score", str(bento), str(input), str(output), "--id-column", "id"]
    cmd += [*extra, "--json"]
    spark = "spark" in extra
    log = output.with_name(output.name + ".log")
    reaped: dict[str, int] = {}
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=output.parent, stdout=subprocess.PIPE, stderr=err)

    def reap() -> None:  # os.wait4: this child's own peak RSS, not every child's
        _, status, usage = os.wait4(proc.pid, 0)
        reaped.update(code=os.waitstatus_to_exitcode(status), rss_kb=usage.ru_maxrss)

    waiter = threading.Thread(target=reap, daemon=True)
    waiter.start()
    if spark:  # part files under the hidden temporary folder (and its _temporary/)
        patterns = [(output.parent, f".{output.name}.nb2prod-*/**/part-*")]
    else:
        patterns = [(output.parent, f".{output.name}.{proc.pid}.tmp")]
    first = None
    while waiter.is_alive():
        if first is None and _first_file(patterns, 4):
            first = time.perf_counter() - start
        waiter.join(0.01)
    total = time.perf_counter() - start
    proc.returncode = reaped.get("code", -1)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    proc.stdout.close()
    summary = json.loads(stdout[stdout.index("{") :]) if "{" in stdout else None
    return {
        "command": " ".join(["nb2prod", *cmd[1:]]),
        "exit_code": proc.returncode,
        "first_rows_s": first,
        "output_s": total,
        "peak_rss_mb": reaped.get("rss_kb", 0) / 1024,
        "summary": summary,
        "log": str(log),
    }


def bench_batch(built: dict[str, Path], work: Path, scale: float) -> dict[str, Any]:
    """The whole case over ``built`` (notebook name -> build directory; churn first).

    ``scale`` scales every row count (at least 20,000 rows each).
    """
    work.mkdir(parents=True, exist_ok=True)
    rows, spark_rows = (max(20_000, int(n * scale)) for n in (ROWS, SPARK_ROWS))
    out: dict[str, Any] = {"scale": scale, "notebooks": {}}
    for name, bento in built.items():
        folder = work / name
        folder.mkdir(exist_ok=True)
        reference = bento / "src" / "monitoring" / "reference.parquet"
        data = make_input(reference, folder / "input.parquet", rows)
        spark_input = None
        if name == "churn":
            spark_input = make_input(reference, folder / "spark-input.parquet", spark_rows, 1)
        m = run_measure(bento, data, folder, spark_input)
        out["notebooks"][name] = m
        if "error" in m:
            print(f"  batch {name}: {m['error']}\n{m['stderr'][-800:]}", flush=True)
            continue
        print(
            f"  batch {name}: local {m['local']['rows_per_s']:,.0f} rows/s, ceiling "
            f"{m['ceiling']['rows_per_s']:,.0f} rows/s ({m['fraction_of_ceiling']:.2f}), with "
            f"the bento's own model {m['ceiling_served_model']['rows_per_s']:,.0f} rows/s "
            f"({m['fraction_of_served_model_ceiling']:.2f}) over {m['rows']:,} rows",
            flush=True,
        )
        if "spark" in m:
            s = m["spark"]
            print(
                f"  batch {name}: spark local[2] {s['spark']['rows_per_s']:,.0f} rows/s, local "
                f"{s['local']['rows_per_s']:,.0f} rows/s ({s['spark_over_local']:.2f}) over "
                f"{s['rows']:,} rows",
                flush=True,
            )
    churn = built.get("churn") or next(iter(built.values()))
    reference = churn / "src" / "monitoring" / "reference.parquet"
    big_rows = max(100_000, int(RSS_ROWS * scale))
    folder = work / "rss"
    folder.mkdir(exist_ok=True)
    start = time.perf_counter()
    big = make_input(reference, folder / "input.parquet", big_rows, 2)
    made = time.perf_counter() - start
    local = timed_cli(churn, big, folder / "scored.parquet")
    local.update(rows=big_rows, input_mb=big.stat().st_size / 2**20, generated_s=made)
    out["rss"] = local
    rate = (local["summary"] or {}).get("rows_per_s", float("nan"))
    print(
        f"  batch {big_rows:,} rows: peak RSS {local['peak_rss_mb']:,.0f} MB, {rate:,.0f} rows/s,"
        f" first rows on disk {local['first_rows_s'] or float('nan'):.2f} s, exit "
        f"{local['exit_code']}",
        flush=True,
    )
    spark_input = work / "churn" / "spark-input.parquet"
    if not spark_input.exists():
        spark_input = make_input(reference, folder / "spark-input.parquet", spark_rows, 1)
    spark = timed_cli(
        churn, spark_input, folder / "spark-out", "--engine", "spark", "--master", "local[2]"
    )
    spark["rows"] = spark_rows
    out["first_row_spark"] = spark
    print(
        f"  batch spark CLI: first rows on disk {spark['first_rows_s'] or float('nan'):.2f} s, "
        f"output {spark['output_s']:.1f} s, exit {spark['exit_code']}",
        flush=True,
    )
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "measure":
        spark_arg = Path(sys.argv[5]) if len(sys.argv) > 5 else None
        found = measure(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), ROUNDS, spark_arg)
        print(json.dumps(found, default=str), flush=True)
    else:
        sys.exit("usage: python -m benchmarks.batch measure BUILD_DIR INPUT WORK [SPARK_INPUT]")
