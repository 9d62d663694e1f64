"""The commands for the life after the first bento: shadow, versions, resolve, serve,
promote, rollback and rebuild. Thin, as in ``cli.py``: flags in, one library call, the
answer out; ``cli.py`` registers them (``LIFECYCLE``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nb2prod.cli_run import run as _run
from nb2prod.console import console as _console


def shadow(
    champion: Annotated[str, typer.Argument(help="The live bento: tag, NAME@alias, .bento, dir.")],
    challenger: Annotated[str, typer.Argument(help="The bento that would replace it.")],
    traffic: Annotated[
        Path, typer.Option("--traffic", help="Prediction log dir, .csv or .parquet of rows.")
    ],
    target: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--target", help="Outcomes, row for row with the traffic (.csv, .parquet)."),
    ] = None,
    target_column: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--target-column", help="Its outcome column (or the traffic's, alone)."),
    ] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write the HTML report.")] = None,  # noqa: UP045
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the JSON.")] = None,  # noqa: UP045
    min_agreement: Annotated[float, typer.Option(help="Classifiers: least agreement.")] = 0.95,
    max_mean_abs_diff: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Regressors: most mean |difference| (default: 0.1 x champion's std)."),
    ] = None,
    max_extra_rejects: Annotated[int, typer.Option(help="Rejects beyond the champion's.")] = 0,
    allow_drift: Annotated[bool, typer.Option(help="Pass shifted predictions.")] = False,
    max_metric_drop: Annotated[
        float, typer.Option(help="With outcomes: how much worse than the champion, per metric.")
    ] = 0.0,
) -> None:
    """Replay traffic through two bentos offline; exit 1 past the thresholds, 2 on bad input."""
    from nb2prod.lifecycle.shadow import Thresholds
    from nb2prod.lifecycle.shadow import shadow as run
    from nb2prod.lifecycle.shadow_show import print_shadow

    limits = Thresholds(
        min_agreement, max_mean_abs_diff, max_extra_rejects, not allow_drift, max_metric_drop
    )
    options = {"target_column": target_column, "thresholds": limits, "html": html}
    report = _run(lambda: run(champion, challenger, traffic, target, json_out=json_out, **options))
    print_shadow(_console(), report)
    raise typer.Exit(report.exit_code)


RefArg = Annotated[
    str,
    typer.Argument(
        help="A registry version: NAME@ALIAS (churn@champion) or NAME:vN (churn:v3).",
        show_default=False,
    ),
]


def versions(
    name: Annotated[str, typer.Argument(help="The service (nb2prod.name).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """List a service's registry versions (aliases, metrics, gates, bento, status) and history."""
    from nb2prod.lifecycle import history, registry

    found, events = _run(lambda: (registry.versions(name), history.history(name)))
    if as_json:
        listed = [v.to_dict() for v in found]
        typer.echo(json.dumps({"name": name, "versions": listed, "history": events}, indent=2))
    else:
        from nb2prod.lifecycle.show import print_versions

        print_versions(_console(), name, found, events)


def resolve(ref: RefArg) -> None:
    """Print the bento tag a registry version names: bentoml containerize $(nb2prod resolve ...)."""
    from nb2prod.lifecycle.registry import resolve as run_resolve

    typer.echo(_run(lambda: run_resolve(ref)))


def serve(ctx: typer.Context, ref: RefArg) -> None:
    """Resolve NAME@ALIAS and run `bentoml serve TAG`, passing any other option on to it."""
    import os

    from nb2prod.lifecycle.registry import serve_command

    command = _run(lambda: serve_command(ref, ctx.args))
    typer.echo(f"{ref}: {' '.join(command[1:])}", err=True)
    os.execvp(command[0], command)  # bentoml gets the terminal and the signals


def rebuild(
    target: Annotated[
        str,
        typer.Argument(
            help="Bento tag (churn:abc123), .bento file or build directory.", show_default=False
        ),
    ],
    notebook: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--notebook", help="The notebook, when not where the manifest says."),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Keep the rebuild here (default: a temporary directory)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rebuild a bento from its manifest (notebook, parameters, data) and name what differs.

    Exit 0 when the version and metrics are the same, 1 when anything differs.
    """
    from nb2prod.builder.rebuild import rebuild as run_rebuild
    from nb2prod.builder.rebuild import report_lines
    from nb2prod.console import build_progress

    with build_progress(_console(stderr=True)) as progress:
        report = _run(
            lambda: run_rebuild(target, notebook=notebook, out_dir=out, progress=progress)
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report_lines(report):
            typer.echo(line)
    raise typer.Exit(0 if report.same else 1)


def promote(
    ref: RefArg,
    traffic: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--traffic",
            help="Also require the shadow check on this traffic (log dir, .csv, .parquet).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--target", help="Outcomes of the traffic, for the shadow check."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Skip the checks (needs --reason, recorded).")
    ] = False,
    reason: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--reason", help="Why: recorded in the history.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Make a version the champion (the old one becomes previous), if its figures allow it."""
    from nb2prod.lifecycle.promotion import promote as run_promote
    from nb2prod.lifecycle.show import print_decision

    decision = _run(
        lambda: run_promote(ref, traffic=traffic, target=target, force=force, reason=reason)
    )
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2, default=str))
    else:
        print_decision(_console(), decision)


def rollback(
    name: Annotated[str, typer.Argument(help="The service (nb2prod.name).", show_default=False)],
    reason: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--reason", help="Why: recorded in the history.", show_default=False),
    ] = None,
) -> None:
    """Move champion back to the previous version, in one step."""
    from nb2prod.lifecycle.promotion import rollback as run_rollback
    from nb2prod.lifecycle.show import print_decision

    print_decision(_console(), _run(lambda: run_rollback(name, reason=reason)))


_PASS_ON = {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}}
# (command, app.command settings), in the order `nb2prod --help` lists them
LIFECYCLE = [
    (versions, {}),
    (promote, {}),
    (rollback, {}),
    (shadow, {}),
    (resolve, {}),
    (serve, _PASS_ON),
    (rebuild, {}),
]
