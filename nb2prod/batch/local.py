"""The local engine of ``nb2prod score``: stream a table through one bento, in this process.

``run_local`` reads INPUT with ``pyarrow.dataset`` (a parquet file or folder, or CSV) in
batches of ``batch_rows`` (at most one batch ahead: memory is bounded by the batch, never the
table), scores each with ``serving/scoring.py``'s ``Scorer`` and appends the scored rows and
the rejects to two ``ParquetWriter``s writing hidden temporary files beside OUTPUT and the
rejects path (``.NAME.<pid>.tmp``). Both are moved into place (``os.replace``) when every
row is done; on any failure both temporary files are removed. A SIGKILL leaves only them.

The bento's ``src/`` goes first on ``sys.path`` for the run, as in its own service: its
modules have plain names (``lifted``, ``nb2prod_validation``), so they are dropped from
``sys.modules`` before and after, and one run scores one bento. The thread limits the
bento sets (``MODEL_THREADS``) are undone when the run ends.

CSV: types are inferred from the first block, empty cells and ``NA``/``null`` are nulls (as
pandas reads them); a later value that does not fit its column stops the run (exit 2).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import ScoreError
from nb2prod.serving import FILES

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from nb2prod.batch.score import Progress
    from nb2prod.bento.locate import Bento

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
BENTO_MODULES = ("lifted", *(Path(name).stem for name in FILES if "/" not in name))


def open_input(path: Path) -> ds.Dataset:
    """INPUT as a dataset: CSV by its suffix (a folder: of its files), else parquet.

    Raises:
        ScoreError: it cannot be read as either.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    data = [p for p in files if not p.name.startswith((".", "_"))]
    if not data:
        raise ScoreError(f"The input folder {path} holds no data file.")
    csv = all(p.name.lower().endswith(CSV_SUFFIXES) for p in data)
    try:
        if csv:
            from pyarrow import csv as pacsv

            tab = all(p.name.lower().endswith(".tsv") for p in data)
            parse = pacsv.ParseOptions(delimiter="\t" if tab else ",")
            convert = pacsv.ConvertOptions(strings_can_be_null=True)
            fmt = ds.CsvFileFormat(parse_options=parse, convert_options=convert)
            return ds.dataset([str(p) for p in data], format=fmt)
        return ds.dataset([str(p) for p in data], format="parquet")
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "CSV" if csv else "parquet"
        raise ScoreError(f"Cannot read the input {path} as {kind}: {_first_line(exc)}.") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


def _batches(dataset: ds.Dataset, columns: list[str], rows: int, where: Path) -> Iterator[Any]:
    """Tables of ``rows`` rows (the last may be shorter), read one batch ahead."""
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    try:
        scanned = dataset.to_batches(
            columns=columns, batch_size=rows, batch_readahead=1, fragment_readahead=1
        )
        for batch in scanned:
            pending.append(batch)
            count += batch.num_rows
            while count >= rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, rows)
                rest = table.slice(rows)
                pending, count = rest.to_batches(), rest.num_rows
    except pa.ArrowException as exc:
        raise ScoreError(f"Cannot read the input {where}: {_first_line(exc)}.") from exc
    if count:
        yield pa.Table.from_batches(pending)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def _bento_on_path(src: Path) -> Iterator[None]:
    """``src`` first on ``sys.path``, the bento's module names free before and after."""

    def forget() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in BENTO_MODULES:
                del sys.modules[name]

    forget()
    sys.path.insert(0, str(src))
    try:
        from threadpoolctl import threadpool_limits

        limits: Any = threadpool_limits(limits=None)  # restores the limits on exit
    except ImportError:
        limits = None
    try:
        yield
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if str(src) in sys.path:
            sys.path.remove(str(src))
        forget()


def run_local(
    bento: Bento,
    model_file: Path,
    input: Path,
    output: Path,
    rejects: Path,
    *,
    batch_rows: int,
    id_column: str | None = None,
    proba: bool = False,
    progress: Progress | None = None,
) -> tuple[int, int, int]:
    """Score ``input`` into ``output`` and ``rejects``; return (rows in, scored, rejected).

    Raises:
        ScoreError: the input cannot be read or lacks a column, the bento's code or model
            does not load, or an output cannot be written.
    """
    dataset = open_input(input)
    names = dataset.schema.names
    with _bento_on_path(bento.src):
        scorer = _scorer(bento, model_file, proba, id_column)
        wanted = [*scorer.columns, *([id_column] if id_column else [])]
        missing = [c for c in dict.fromkeys(wanted) if c not in names]
        if missing:
            what = "the id column" if missing == [id_column] else f"input column(s) of {bento.tag}"
            raise ScoreError(f"The input {input} lacks {what}: {', '.join(missing)}.")
        columns = list(dict.fromkeys(wanted)) if id_column else names
        total = _count(dataset)
        temps = [_temporary(output), _temporary(rejects)]
        try:
            counts = _stream(scorer, dataset, columns, (temps, input), batch_rows, progress, total)
            os.replace(temps[1], rejects)
            os.replace(temps[0], output)
        except OSError as exc:
            _remove(temps)
            raise ScoreError(f"Cannot write {output}: {_first_line(exc)}.") from exc
        except BaseException:
            _remove(temps)
            raise
    return counts


def _scorer(bento: Bento, model_file: Path, proba: bool, id_column: str | None) -> Any:
    from nb2prod.serving.scoring import Scorer

    try:
        return Scorer(bento.src, model_file, proba=proba, id_column=id_column)
    except Exception as exc:  # the bento's own code or model: one sentence
        raise ScoreError(
            f"Cannot load the code or model of {bento.tag} from {bento.src}: "
            f"{type(exc).__name__}: {_first_line(exc)}."
        ) from exc


def _count(dataset: ds.Dataset) -> int | None:
    """Rows in the input when the metadata says (parquet), else None (CSV: not read twice)."""
    import pyarrow.dataset as ds

    if not isinstance(dataset, ds.FileSystemDataset) or not isinstance(
        dataset.format, ds.ParquetFileFormat
    ):
        return None
    return int(dataset.count_rows())


def _stream(
    scorer: Any,
    dataset: ds.Dataset,
    columns: list[str],
    files: tuple[list[Path], Path],
    batch_rows: int,
    progress: Progress | None,
    total: int | None,
) -> tuple[int, int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nb2prod.serving.scoring import rejects_schema

    (out_temp, rejects_temp), input = files
    source = dataset.schema.remove_metadata()
    kept = [source.field(c) for c in ([scorer.id_column] if scorer.id_column else columns)]
    schema = pa.schema([*kept, *(pa.field(n, t) for n, t in scorer.added)])
    rejected_schema = rejects_schema(source.field(scorer.id_column) if scorer.id_column else None)
    rows_in = scored = rejected = 0
    with (
        pq.ParquetWriter(out_temp, schema) as out,
        pq.ParquetWriter(rejects_temp, rejected_schema) as bad,
    ):
        for table in _batches(dataset, columns, batch_rows, input):
            done, refused = scorer.score_arrow(table, rows_in)
            out.write_table(pa.Table.from_arrays(done.columns, schema=schema))
            if refused.num_rows:
                bad.write_table(refused)
            rows_in += table.num_rows
            scored += done.num_rows
            rejected += refused.num_rows
            if progress is not None:
                progress(rows_in, total)
    return rows_in, scored, rejected


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
