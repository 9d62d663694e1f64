"""The ``nb2prod`` command line: flags in, one library call, errors out as one sentence."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from nb2prod._version import __version__
from nb2prod.cli_batch import BATCH
from nb2prod.cli_keys import KEYS
from nb2prod.cli_lifecycle import LIFECYCLE
from nb2prod.cli_params import QuickCommand, QuickGroup
from nb2prod.cli_run import run as _run
from nb2prod.cli_run import state as _state
from nb2prod.console import console as _console

app = typer.Typer(
    name="nb2prod",
    help="Turn a tagged Jupyter notebook into a validated, tested, monitored BentoML service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=QuickGroup,  # its flags are read without Pydantic: `nb2prod check` answers as you type
)

NotebookArg = Annotated[
    Path,
    typer.Argument(help="The tagged notebook (.ipynb, or .py percent script).", show_default=False),
]
ParamOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer reads the Optional
    typer.Option("--param", "-p", metavar="NAME VALUE", help="Set a notebook parameter."),
]


class _ParamsCommand(TyperCommand):
    """Gives ``-p`` papermill's two-value form, ``-p NAME VALUE``, repeatable.

    Typer has no list-of-pairs option: its parser reads each pair as a 2-tuple (``nargs=2``), and
    Typer's ``list[str]`` conversion hands it on as the tuple's repr, which :func:`_pairs` reads
    back. (Typer 0.26+ vendors click and never reads a parameter's click ``type``, so none is set.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "param":
                param.nargs = 2


ParamsFileOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--params", help="YAML or JSON file of parameter values.", show_default=False),
]


def _pairs(raw: list[str] | None) -> list[tuple[str, str]]:
    return [tuple(ast.literal_eval(item)) for item in raw or []]


class _RichOnFirstRecord(logging.Handler):
    """Rich's log handler, made on the first record: a command that logs nothing loads no Rich."""

    def __init__(self) -> None:
        super().__init__()
        self._rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.logging import RichHandler

            self._rich = RichHandler(console=_console(stderr=True), show_path=False)
            self._rich.setFormatter(self.formatter)
        self._rich.handle(record)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nb2prod {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step; show tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """nb2prod: notebook in, production service out."""
    _state["verbose"] = verbose
    logging.basicConfig(
        force=True,
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[_RichOnFirstRecord()],
    )
    logging.getLogger("nb2prod").setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.command(cls=QuickCommand)
def check(
    notebook: NotebookArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
) -> None:
    """Check a notebook statically (no kernel): roles, names, entry point, magics."""
    from nb2prod.console import print_findings
    from nb2prod.notebook.check import check as run_check

    checked = _run(lambda: run_check(notebook))
    if as_json:
        typer.echo(json.dumps(checked.to_dict(), indent=2))
    else:
        print_findings(_console, checked)
    raise typer.Exit(0 if checked.ok else 1)


@app.command()
def tag(
    notebook: NotebookArg,
    source: Annotated[
        str,
        typer.Option("--from", help="Whose tags to import: kale, nbdev, or auto (those present)."),
    ] = "auto",
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Write the tagged notebook here.", show_default=False),
    ] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Tag the notebook itself.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import Kale or nbdev tags as nb2prod roles (the foreign tags stay); dry run by default."""
    from nb2prod.console import print_tag_report
    from nb2prod.notebook.tagging import tag_file

    report = _run(lambda: tag_file(notebook, source, out=out, in_place=in_place))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_tag_report(_console(), report)


@app.command()
def suggest(
    notebook: NotebookArg,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Write the suggested notebook (with --out or --in-place)."),
    ] = False,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Write the suggested notebook here.", show_default=False),
    ] = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place", help="Write it over the notebook (originals kept as skip cells)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the suggestion as JSON.")] = False,
    parity: Annotated[
        bool,
        typer.Option(
            "--parity",
            help="Compare the notebook's own entry point with its original cells "
            "(automatic when a nb2prod:features cell defines it).",
        ),
    ] = False,
    original: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--original",
            metavar="4,5,6",
            help="The original imperative cells, by index (default: those marked "
            "nb2prod_original by --apply).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Propose contract cells for an imperative notebook, with a feature-parity report."""
    from nb2prod.errors import SuggestError
    from nb2prod.notebook.read import read
    from nb2prod.notebook.tagging import dumps, write
    from nb2prod.suggest.existing import check_parity, has_entrypoint
    from nb2prod.suggest.show import print_parity, print_suggestion
    from nb2prod.suggest.suggestion import suggest as run_suggest

    target = out or (notebook if in_place else None)
    err = _console(stderr=True)
    if apply and target is None:
        err.print("[bold red]error:[/] --apply needs --out PATH or --in-place.")
        raise typer.Exit(2)
    try:
        cells = [int(i) for i in original.split(",")] if original is not None else None
    except ValueError:
        err.print(
            f"[bold red]error:[/] --original takes cell indices like 4,5,6, not {original!r}."
        )
        raise typer.Exit(2) from None
    if parity or cells is not None or _run(lambda: has_entrypoint(read(notebook))):
        if target is not None or apply:
            err.print(
                "[bold red]error:[/] a parity check writes nothing; drop --apply, --out, --in-place."
            )
            raise typer.Exit(2)
        report = _run(lambda: check_parity(notebook, original=cells))
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            print_parity(_console(), report.parity, report.notes)
        raise typer.Exit(0 if report.parity["ok"] else 1)
    result = _run(lambda: run_suggest(notebook))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_suggestion(_console(), result)
    if target is not None:
        _run(lambda: write(target, dumps(result.applied()), notebook, SuggestError))
        _console(stderr=True).print(f"wrote [bold]{target}[/]")


@app.command(cls=_ParamsCommand)
def train(
    notebook: NotebookArg,
    param: ParamOpt = None,
    params: ParamsFileOpt = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory for the executed notebook and model."),
    ] = None,
) -> None:
    """Train the notebook with papermill (skip cells removed) and keep what it made."""
    from nb2prod.builder.training import parse_params
    from nb2prod.builder.training import train as run_train

    result = _run(lambda: run_train(notebook, parse_params(_pairs(param), params), out_dir=out))
    console = _console()
    console.print(f"trained: executed notebook at [bold]{result.executed}[/]")
    for name, value in result.metrics.items():
        console.print(f"  {name} = {value:.4g}")


@app.command(cls=_ParamsCommand)
def build(
    notebook: NotebookArg,
    param: ParamOpt = None,
    params: ParamsFileOpt = None,
    out: Annotated[
        Path, typer.Option("--out", help="Where .bento files and build directories go.")
    ] = Path("bentos"),
    no_gate: Annotated[
        bool,
        typer.Option(
            "--no-gate",
            help="Skip the generated property tests (the manifest records it). Never the default.",
        ),
    ] = False,
) -> None:
    """Check, train, lift, test and package the notebook as a BentoML bento."""
    from nb2prod.builder.pipeline import build as run_build
    from nb2prod.builder.training import parse_params
    from nb2prod.console import build_progress, print_build

    values = _run(lambda: parse_params(_pairs(param), params))
    with build_progress(_console(stderr=True)) as progress:
        result = _run(
            lambda: run_build(notebook, values, out_dir=out, progress=progress, gate=not no_gate)
        )
    print_build(_console(), result)


@app.command()
def test(
    target: Annotated[
        str,
        typer.Argument(
            help="Build directory (bentos/churn-<version>), .bento file or bento tag (churn:latest).",
            show_default=False,
        ),
    ],
    seed: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--seed", help="Hypothesis seed, to replay a reported failure."),
    ] = None,
) -> None:
    """Run a build's generated tests (properties and parity) on their own."""
    from nb2prod.gate.run import run_target

    run = _run(lambda: run_target(target, seed=seed))
    skipped = f", {len(run.skipped)} skipped" if run.skipped else ""
    _console().print(
        f"[green]passed[/]: {len(run.passed)} generated test(s){skipped} "
        f"in {run.seconds:.1f} s (seed {run.seed})"
    )


@app.command()
def monitor(
    bento: Annotated[
        str,
        typer.Argument(
            help="Bento tag (churn:latest), .bento file or build directory.", show_default=False
        ),
    ],
    current: Annotated[
        Path,
        typer.Option(
            "--current",
            help="Current data: .csv, .parquet or a prediction log directory.",
            show_default=False,
        ),
    ],
    html: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--html", help="Write Evidently's HTML report here.", show_default=False),
    ] = None,
    json_out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--json", help="Write the JSON summary here.", show_default=False),
    ] = None,
    target: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--target", help="Column of true outcomes: adds quality metrics.", show_default=False
        ),
    ] = None,
    min_rows: Annotated[
        int,
        typer.Option(
            "--min-rows",
            min=1,
            help="Fewest current rows to run the drift test on; fewer is exit 2.",
        ),
    ] = 30,  # monitoring.run.MIN_ROWS, not imported here: `nb2prod --help` stays light
    max_defer_rate: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--max-defer-rate",
            help="Exit 1 when a larger share of logged rows was deferred (serving.defer_below).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare current data with the bento's reference; exit 1 on drift, 2 on bad input."""
    from nb2prod.console import print_drift
    from nb2prod.monitoring.run import monitor as run_monitor

    result = _run(
        lambda: run_monitor(
            bento,
            current,
            html=html,
            json_out=json_out,
            target=target,
            min_rows=min_rows,
            max_defer_rate=max_defer_rate,
        )
    )
    print_drift(_console(), result)
    raise typer.Exit(result.exit_code)


# Batch scoring, nb2prod score (nb2prod/cli_batch.py)
for _command, _settings in BATCH:
    app.command(**_settings)(_command)

# API keys for a served bento, nb2prod keys (nb2prod/cli_keys.py)
for _group, _settings in KEYS:
    app.add_typer(_group, **_settings)

# The commands for the life after the first bento (nb2prod/cli_lifecycle.py)
for _command, _settings in LIFECYCLE:
    app.command(**_settings)(_command)


if __name__ == "__main__":  # pragma: no cover
    app()
