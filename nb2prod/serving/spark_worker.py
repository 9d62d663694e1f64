"""Score the Arrow batches of one Spark partition through a bento's own ``Scorer``.

``nb2prod.batch.spark`` ships this file in the archive it adds to the Spark job, as
``nb2prod_spark_worker.py`` beside the bento's ``src/`` files, its model files and
``nb2prod_scoring.py`` (``serving/scoring.py``). On an executor the job's function puts the
unpacked archive first on ``sys.path`` and calls :func:`score_partition` from ``mapInArrow``.
It imports only that archive's modules, never nb2prod, and is not copied into bentos.

Every input batch carries two helper columns, ``FILE`` (the input file's index, files in
path order) and ``BLOCK`` (the byte offset of the file split Spark read the row from). One
split is read by one task, in file order, so a row's position in its split is the count of
rows of that split seen before it in the partition. ``score_partition`` numbers rejects by
that position and, at the end of the partition, yields one ``count`` row per split; the
driver turns the counts into each split's first row and adds it (``row`` = the row's
position in the input, files in path order).

Out comes one table of :func:`union_schema`: ``KIND`` (``scored``, ``rejected`` or
``count``), ``FILE``, ``BLOCK``, ``COUNT``, then the scored columns as ``_s0, _s1, ...`` and
the rejects' as ``_r0, _r1, ...`` (by position: names of the two sides may clash), null
where a row is of the other kind.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# the scorer by its name where this runs: nb2prod_scoring in the archive, nb2prod's here
scoring = importlib.import_module(__name__.rpartition("spark_worker")[0] + "scoring")

KIND, FILE, BLOCK, COUNT = "__kind__", "__file__", "__block__", "__count__"
SCORED, REJECTED, COUNTED = "scored", "rejected", "count"
_SCORERS: dict[tuple, Any] = {}  # one Scorer per Python worker (Spark reuses workers)


def union_schema(scored: Any, rejected: Any) -> Any:
    """The one schema the job yields: the helper columns, then both sides by position."""
    import pyarrow as pa

    fields = [pa.field(KIND, pa.string()), pa.field(FILE, pa.int32())]
    fields += [pa.field(BLOCK, pa.int64()), pa.field(COUNT, pa.int64())]
    fields += [pa.field(f"_s{i}", f.type) for i, f in enumerate(scored)]
    fields += [pa.field(f"_r{i}", f.type) for i, f in enumerate(rejected)]
    return pa.schema(fields)


def runs(files: Any, blocks: Any) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of rows from one split (same file and block)."""
    import numpy as np

    files, blocks = np.asarray(files), np.asarray(blocks)
    if len(files) == 0:
        return []
    change = np.flatnonzero((files[1:] != files[:-1]) | (blocks[1:] != blocks[:-1])) + 1
    edges = [0, *change.tolist(), len(files)]
    return list(itertools.pairwise(edges))


def offsets(counts: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    """Each split's first row in the input: splits in (file index, byte offset) order."""
    first, at = {}, 0
    for key in sorted(counts):
        first[key] = at
        at += counts[key]
    return first


def tally(groups: list[dict[str, Any]]) -> tuple[dict[tuple[int, int], int], int, int]:
    """The job's counts grouped by (KIND, FILE, BLOCK) with ``n`` rows and ``c`` the sum of
    COUNT: (input rows per split, rows scored, rows rejected)."""
    per_split = {(g[FILE], g[BLOCK]): int(g["c"]) for g in groups if g[KIND] == COUNTED}
    scored = sum(int(g["n"]) for g in groups if g[KIND] == SCORED)
    return per_split, scored, sum(int(g["n"]) for g in groups if g[KIND] == REJECTED)


def scorer(root: str, model: str, proba: bool, id_column: str | None) -> Any:
    """The worker's Scorer for this archive (built once: loading the model is the cost)."""
    key = (root, model, proba, id_column)
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = scoring.Scorer(
            Path(root), Path(root) / model, proba=proba, id_column=id_column
        )
    return _SCORERS[key]


def _side(table: Any, kind: str, schema: Any, file: int, block: int) -> Any:
    """``table`` (scored or rejects) as a batch of the union schema."""
    import pyarrow as pa

    n, prefix = table.num_rows, "_s" if kind == SCORED else "_r"
    arrays = []
    for field in schema:
        if field.name == KIND:
            arrays.append(pa.array([kind] * n, pa.string()))
        elif field.name == FILE:
            arrays.append(pa.array([file] * n, pa.int32()))
        elif field.name == BLOCK:
            arrays.append(pa.array([block] * n, pa.int64()))
        elif field.name.startswith(prefix):
            column = table.column(int(field.name[len(prefix) :])).combine_chunks()
            arrays.append(column.cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _counts(seen: dict[tuple[int, int], int], schema: Any) -> Any:
    import pyarrow as pa

    keys = sorted(seen)
    columns = {
        KIND: pa.array([COUNTED] * len(keys), pa.string()),
        FILE: pa.array([k[0] for k in keys], pa.int32()),
        BLOCK: pa.array([k[1] for k in keys], pa.int64()),
        COUNT: pa.array([seen[k] for k in keys], pa.int64()),
    }
    arrays = [columns.get(f.name, pa.nulls(len(keys), f.type)) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def score_partition(
    batches: Iterator[Any],
    root: str,
    *,
    model: str,
    proba: bool,
    id_column: str | None,
    schema: Any,
) -> Iterator[Any]:
    """Score one partition's Arrow batches (input columns plus ``FILE`` and ``BLOCK``).

    Args:
        batches: the partition's ``pyarrow.RecordBatch`` es, as ``mapInArrow`` gives them.
        root: the unpacked archive: the bento's ``src/`` files and its model files.
        model: the model file's name in ``root`` (``model.pkl``).
        proba: add the class probabilities.
        id_column: the input column kept beside the predictions (None: all of them).
        schema: :func:`union_schema` of the job.
    """
    judge = scorer(root, model, proba, id_column)
    seen: dict[tuple[int, int], int] = {}
    for batch in batches:
        files = batch.column(FILE).to_numpy(zero_copy_only=False)
        blocks = batch.column(BLOCK).to_numpy(zero_copy_only=False)
        rows = batch.drop_columns([FILE, BLOCK])
        for start, stop in runs(files, blocks):
            key = (int(files[start]), int(blocks[start]))
            first = seen.get(key, 0)
            seen[key] = first + (stop - start)
            scored, rejects = judge.score_arrow(rows.slice(start, stop - start), first)
            if scored.num_rows:
                yield _side(scored, SCORED, schema, *key)
            if rejects.num_rows:
                yield _side(rejects, REJECTED, schema, *key)
    if seen:
        yield _counts(seen, schema)
