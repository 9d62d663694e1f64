"""``nb2prod score``: flags in, one library call (``batch.score.score``), the summary out;
Rich progress with rows/s on stderr. ``cli.py`` registers it (``BATCH``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from nb2prod.cli_run import run as _run
from nb2prod.console import console as _console

if TYPE_CHECKING:
    from rich.console import Console

    from nb2prod.batch.score import ScoreResult


def score(
    bento: Annotated[
        str,
        typer.Argument(help="The bento: tag, NAME@alias, .bento file or build directory."),
    ],
    input: Annotated[
        Path, typer.Argument(help="The rows: a parquet file or folder, or CSV.", show_default=False)
    ],
    output: Annotated[
        Path, typer.Argument(help="The scored rows, as parquet.", show_default=False)
    ],
    engine: Annotated[str, typer.Option("--engine", help="local (this process) or spark.")] = (
        "local"
    ),
    master: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--master", help="Spark master (default local[*]; spark://host:7077)."),
    ] = None,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Rows per batch.")] = 50_000,
    id_column: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--id-column", help="Keep this input column, not all of them."),
    ] = None,
    proba: Annotated[bool, typer.Option("--proba", help="Add proba_<class> columns.")] = False,
    rejects: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--rejects", help="Refused rows (default: OUTPUT as NAME.rejects.parquet)."),
    ] = None,
    max_reject_rate: Annotated[
        float, typer.Option("--max-reject-rate", help="Exit 1 past this share of rejects.")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score a table through the bento's own path: validation, features, model.

    Each row lands in OUTPUT or the rejects file. Exit 1 past --max-reject-rate, 2 on bad input.
    """
    import signal
    import sys

    from nb2prod.batch.score import score as run_score

    # SIGTERM unwinds like Ctrl-C: the temporary files are removed, no OUTPUT is written
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    options: dict[str, Any] = {
        "engine": engine,
        "master": master,
        "batch_rows": batch_rows,
        "id_column": id_column,
        "proba": proba,
        "rejects": rejects,
        "max_reject_rate": max_reject_rate,
    }
    with score_progress(_console(stderr=True)) as progress:
        result = _run(lambda: run_score(bento, input, output, progress=progress, **options))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_score(_console(), result)
    raise typer.Exit(result.exit_code)


@contextmanager
def score_progress(console: Console) -> Iterator[Callable[[int, int | None], None]]:
    """Rows done (of the total, when the input's metadata says), rows/s, time elapsed."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}{task.fields[of]} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task("scoring", total=None, of="", rate="")
    started = time.perf_counter()

    def update(done: int, total: int | None) -> None:
        if not bar.live.is_started:  # shown from the first batch: an error comes alone
            bar.start()
        rate = done / max(time.perf_counter() - started, 1e-9)
        of = f" of {total:,}" if total is not None else ""
        bar.update(task, completed=done, total=total, of=of, rate=f"{rate:,.0f} rows/s")

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


def print_score(console: Console, result: ScoreResult) -> None:
    """The closing summary: rows in, scored (where), rejected (where), rows/s."""
    from rich.markup import escape

    share = f"{result.reject_rate:.2%}"
    over = result.exit_code != 0
    rejected = f"{result.rows_rejected:,} ({share})"
    rejected = f"[bold red]{rejected}[/]" if over else rejected
    rows = [
        ("bento", f"[bold]{escape(result.tag)}[/] ({result.engine} engine)"),
        ("rows in", f"{result.rows_in:,}"),
        ("scored", f"{result.rows_scored:,} -> {escape(str(result.output))}"),
        ("rejected", f"{rejected} -> {escape(str(result.rejects))}"),
        ("speed", f"{result.rows_per_s:,.0f} rows/s ({result.seconds:.1f} s)"),
    ]
    for name, text in rows:
        console.print(f"{name:<10}{text}", soft_wrap=True)
    if over:
        console.print(
            f"[bold red]exit 1[/]: {share} of the rows were rejected, over --max-reject-rate "
            f"{result.max_reject_rate:g}"
        )


# (command, app.command settings), as cli_lifecycle.LIFECYCLE
BATCH = [(score, {})]
