"""``nb2prod score``: every row of a table through a bento's own service path, none lost.

``score(bento, input, output, ...)`` opens the bento (``open_bento``: a tag, ``NAME@alias``,
a ``.bento`` file or a build directory), checks the arguments, and hands the work to an
engine: ``local`` (``batch/local.py``, in this process, streaming) or ``spark``
(``batch/spark.py``: ``run_spark(bento, input, output, rejects, *, master, batch_rows,
id_column, proba) -> (rows_in, rows_scored, rows_rejected)``). Both score with
``serving/scoring.py``'s ``Scorer``, so both give the service's answers.

OUTPUT is parquet: the id column (``id_column``) or every input column, then
``prediction``, ``proba_<class>`` (with ``proba``) and ``model_version``
(``scoring.output_schema``). Rows the service would refuse go to the rejects file
(``rejects``, by default :func:`rejects_path`: ``out.parquet`` -> ``out.rejects.parquet``)
with ``row``, the id column, ``status``, ``failures`` (the 422 body's, as JSON) and
``error`` (``scoring.rejects_schema``); it is always written, empty when nothing was
refused, so a stale one never sits beside a new OUTPUT. Both are written under a hidden
temporary name beside their final path and moved into place at the end: a failed or killed
run leaves no complete-looking OUTPUT.

Exit codes (``ScoreResult.exit_code``): 0; 1 when rejected / rows in exceeds
``max_reject_rate``; bad arguments or unreadable input raise :class:`ScoreError` (2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento.locate import model_file, open_bento
from nb2prod.errors import ScoreError

if TYPE_CHECKING:
    from nb2prod.bento.locate import Bento

ENGINES = ("local", "spark")
BATCH_ROWS = 50_000  # rows per batch the local engine reads and scores
REJECTS_SUFFIX = ".rejects"
# progress(rows_done, rows_total or None): called after each batch
Progress = Callable[[int, "int | None"], None]


@dataclass
class ScoreResult:
    """What a score run did: its counts, speed, files and exit code."""

    tag: str
    model_version: str
    engine: str
    rows_in: int
    rows_scored: int
    rows_rejected: int
    seconds: float
    output: Path
    rejects: Path
    max_reject_rate: float

    @property
    def rows_per_s(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_in if self.rows_in else 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.reject_rate > self.max_reject_rate else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "model_version": self.model_version,
            "engine": self.engine,
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "seconds": self.seconds,
            "rows_per_s": self.rows_per_s,
            "output": str(self.output),
            "rejects": str(self.rejects),
            "exit_code": self.exit_code,
        }


def rejects_path(output: Path) -> Path:
    """The default rejects file beside ``output``: ``out.parquet`` -> ``out.rejects.parquet``."""
    output = Path(output)
    if output.suffix == ".parquet":
        return output.with_name(output.stem + REJECTS_SUFFIX + ".parquet")
    return output.with_name(output.name + REJECTS_SUFFIX)


def _check(
    engine: str, input: Path, output: Path, rejects: Path, batch_rows: int, rate: float
) -> None:
    if engine not in ENGINES:
        raise ScoreError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}.")
    if batch_rows < 1:
        raise ScoreError(f"--batch-rows must be at least 1, not {batch_rows}.")
    if not 0.0 <= rate <= 1.0:
        raise ScoreError(f"--max-reject-rate must be between 0 and 1, not {rate}.")
    if engine == "local" and not input.exists():
        raise ScoreError(f"The input {input} does not exist.")
    if output.resolve() == input.resolve() or rejects.resolve() == input.resolve():
        raise ScoreError(f"The output {output} would overwrite the input {input}.")
    if output.resolve() == rejects.resolve():
        raise ScoreError(f"The rejects file {rejects} cannot be the output itself.")
    if engine == "local":
        for path in (output, rejects):
            if not path.parent.is_dir():
                raise ScoreError(f"The folder of {path} does not exist.")
            if path.is_dir():
                raise ScoreError(f"{path} is a directory; the local engine writes one file.")


def score(
    bento: str | Path,
    input: str | Path,
    output: str | Path,
    *,
    engine: str = "local",
    master: str | None = None,
    batch_rows: int = BATCH_ROWS,
    id_column: str | None = None,
    proba: bool = False,
    rejects: str | Path | None = None,
    max_reject_rate: float = 0.0,
    progress: Progress | None = None,
) -> ScoreResult:
    """Score every row of ``input`` through ``bento``'s own path into ``output``.

    Args:
        bento: anything ``open_bento`` takes.
        input: a parquet file or directory, or a CSV file (with Spark, any path Spark reads).
        output: the parquet file (a directory with Spark) of scored rows.
        engine: ``local`` (this process, streaming) or ``spark``.
        master: the Spark master (``local[*]`` by default; ``spark://host:7077``).
        batch_rows: rows per batch read and scored.
        id_column: keep only this input column beside the predictions (else all of them).
        proba: add ``proba_<class>`` columns (a classifier with ``predict_proba``).
        rejects: where the refused rows go (default :func:`rejects_path`).
        max_reject_rate: the share of rejected rows past which the exit code is 1.
        progress: called with (rows done, rows in or None) after each batch.

    Raises:
        ScoreError: bad arguments, an input that cannot be read or lacks a column, or a
            bento whose model or code cannot be loaded.
        BentoNotFound: no such bento.
    """
    input, output = Path(input).expanduser(), Path(output).expanduser()
    rejects = Path(rejects).expanduser() if rejects is not None else rejects_path(output)
    _check(engine, input, output, rejects, batch_rows, max_reject_rate)
    if master is not None and engine != "spark":
        raise ScoreError("--master is for --engine spark.")
    started = time.perf_counter()
    with open_bento(bento) as found:  # an unknown NAME@alias is its BentoNotFound too
        counts = _dispatch(
            found, engine, input, output, rejects, master, batch_rows, id_column, proba,
            progress,
        )  # fmt: skip
        tag, version = found.tag, str(found.manifest.get("version", ""))
    rows_in, scored, rejected = counts
    return ScoreResult(
        tag=tag,
        model_version=version,
        engine=engine,
        rows_in=rows_in,
        rows_scored=scored,
        rows_rejected=rejected,
        seconds=time.perf_counter() - started,
        output=output,
        rejects=rejects,
        max_reject_rate=max_reject_rate,
    )


def _dispatch(
    bento: Bento,
    engine: str,
    input: Path,
    output: Path,
    rejects: Path,
    master: str | None,
    batch_rows: int,
    id_column: str | None,
    proba: bool,
    progress: Progress | None,
) -> tuple[int, int, int]:
    if engine == "local":
        from nb2prod.batch.local import run_local

        return run_local(
            bento, model_file(bento), input, output, rejects,
            batch_rows=batch_rows, id_column=id_column, proba=proba, progress=progress,
        )  # fmt: skip
    try:
        from nb2prod.batch.spark import run_spark
    except ImportError as exc:
        raise ScoreError(
            f"The Spark engine cannot start here ({exc}): install pyspark, or use --engine local."
        ) from exc
    return run_spark(
        bento, input, output, rejects,
        master=master, batch_rows=batch_rows, id_column=id_column, proba=proba,
    )  # fmt: skip
