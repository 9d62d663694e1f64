"""Rich rendering for the CLI: findings, build progress and the build summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
STAGE_TEXT = {
    "check": "static checks",
    "train": "training with papermill",
    "lift": "lifting cells and generating code",
    "test": "running generated tests",
    "bento": "building and exporting the bento",
}


def print_findings(console: Any, report: Any) -> None:
    """One line per finding, then a count line."""
    for finding in report.findings:
        style = STYLE[finding.severity]
        console.print(f"[{style}]{finding.severity}[/] [dim]{finding.code}[/] {finding.message}")
    counts = report.to_dict()["counts"]
    verdict = "[green]ok[/]" if report.ok else "[bold red]failed[/]"
    console.print(
        f"{report.notebook.path.name}: {verdict} "
        f"({counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info)"
    )


@contextmanager
def build_progress(console: Any) -> Iterator[Callable[[str, str], None]]:
    """A Rich progress display; yields the callback that ``build`` reports stages to."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, event: str) -> None:
            text = STAGE_TEXT.get(stage, stage)
            if event == "start":
                tasks[stage] = progress.add_task(text, total=1)
            elif stage in tasks:
                progress.update(tasks[stage], completed=1, description=f"[green]✓[/] {text}")

        yield update


def print_build(console: Any, result: Any) -> None:
    """The closing summary: tag, metrics and gates, file, serve command."""
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row(
        "bento", f"[bold]{result.tag}[/]" + ("  (unchanged: cache hit)" if result.cached else "")
    )
    for name, value in result.metrics.items():
        gate = next((g for g in result.gates if g["metric"] == name), None)
        suffix = f"  gate {gate['bound']} [green]passed[/]" if gate else ""
        table.add_row(f"metric {name}", f"{value:.4g}{suffix}")
    table.add_row("file", str(result.bento_path))
    table.add_row("sources", str(result.build_dir / "src"))
    table.add_row("serve", result.serve_command)
    console.print(table)
