"""What the CLI prints, with Rich: findings, build progress and summary, the drift table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from nb2prod.builder.pipeline import BuildResult
    from nb2prod.monitoring.run import MonitorResult
    from nb2prod.notebook.analysis import CheckResult
    from nb2prod.notebook.tagging import TagReport

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def console(stderr: bool = False) -> Console:
    """The console the CLI prints to (stdout, or stderr for errors and progress)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_findings(make_console: Callable[[], Console], checked: CheckResult) -> None:
    """One line per finding, then a count line.

    ``make_console`` makes the Rich console, called only when there is a finding to print: a clean
    notebook's one line goes out through Typer's echo, which colours "ok" on a terminal and
    leaves it plain elsewhere, as Rich would, without Rich's ~0.1 s import (`nb2prod check`
    answers as you type).
    """
    counts = checked.to_dict()["counts"]
    tally = f"({counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info)"
    if not checked.findings:
        import typer

        typer.echo(f"{checked.notebook.path.name}: {typer.style('ok', fg='green')} {tally}")
        return
    console = make_console()
    for finding in checked.findings:
        style = STYLE[finding.severity]
        console.print(f"[{style}]{finding.severity}[/] [dim]{finding.code}[/] {finding.message}")
    verdict = "[green]ok[/]" if checked.ok else "[bold red]failed[/]"
    console.print(f"{checked.notebook.path.name}: {verdict} {tally}")


def print_tag_report(console: Console, report: TagReport) -> None:
    """The tag import as a table (cell, tag, role or why not), then what was written."""
    from rich.markup import escape
    from rich.table import Table

    from nb2prod.notebook.read import role_tag

    table = Table(title=escape(f"{report.notebook.name}: {report.dialect} tags"))
    for name in ("cell", "tag", "nb2prod role", "why"):
        table.add_column(name)
    rows = [(m, f"[green]{role_tag(m.role)}[/]" if m.role else "untagged") for m in report.mapped]
    rows += [(u, "[yellow]not mapped[/]") for u in report.unmapped]
    for entry, role in sorted(rows, key=lambda row: row[0].cell_index):
        cell = f"{entry.cell_index} ({entry.cell_id})"
        table.add_row(cell, escape(entry.written), role, escape(entry.reason))
    console.print(table)
    cells = len({m.cell_index for m in report.tagged})
    console.print(f"{cells} cell(s) tagged, {len(report.unmapped)} tag(s) not mapped")
    if report.written:
        for key, value in report.settings.items():
            console.print(f"setting nb2prod.{key} = {escape(repr(value))}")
        console.print(
            f"wrote [bold]{escape(str(report.written))}[/]; the {report.dialect} tags stay"
        )
    elif cells:
        console.print(
            "[yellow]dry run[/]: nothing written; --in-place tags the notebook, --out PATH "
            "writes a tagged copy"
        )
    else:
        console.print("nothing to change: no cell gains a role")


@contextmanager
def build_progress(console: Console) -> Iterator[Callable[[str, str], None]]:
    """A Rich progress display; yields the callback that ``build`` reports stages to."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from nb2prod.builder.pipeline import STAGES  # here: `nb2prod check` skips the builder

    stage_text = {s.name: s.doing for s in STAGES}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, event: str) -> None:
            text = stage_text.get(stage, stage)
            if event == "start":
                tasks[stage] = progress.add_task(text, total=1)
            elif stage in tasks:
                progress.update(tasks[stage], completed=1, description=f"[green]✓[/] {text}")

        yield update


def print_build(console: Console, result: BuildResult) -> None:
    """The closing summary: tag, metrics and gates, file, serve command, cache.

    One line per row, never wrapped: a command or a path cut in two cannot be pasted, and
    Rich wraps at 80 columns when the output is not a terminal.
    """
    from rich.markup import escape

    rows = [("bento", f"[bold]{escape(result.tag)}[/]")]
    if result.cached:
        rows[0] = ("bento", rows[0][1] + "  (unchanged: cache hit)")
    for name, value in result.metrics.items():
        gate = next((g for g in result.gates if g["metric"] == name and "column" not in g), None)
        suffix = f"  gate {escape(gate['bound'])} [green]passed[/]" if gate else ""
        rows.append((f"metric {name}", f"{value:.4g}{suffix}"))
    rows += _evaluated_gates(result.gates)
    if result.serving:
        rows.append(("runtime", escape(runtime_line(result.serving))))
    rows += [
        ("file", escape(str(result.bento_path))),
        ("sources", escape(str(result.build_dir / "src"))),
        ("serve", escape(result.serve_command)),
    ]
    if result.tracking:  # lifecycle.tracking; tracking_off was logged as a warning already
        run = result.tracking
        made = " (made by that run: cache hit)" if run.get("cached") else ""
        text = f"MLflow run {run['run_id']}, {run['experiment']} version {run['version']}{made}"
        rows.append(("tracked", escape(f"{text}, in {run['uri']}")))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:  # labels are plain text, values markup
        console.print(f"{escape(label.ljust(width))}  {value}", soft_wrap=True)
    if result.cache_off:
        text = f"cache off for this notebook: {result.cache_off}"
        console.print(f"[yellow]{escape(text)}[/]", soft_wrap=True)


def _evaluated_gates(gates: list[dict]) -> list[tuple[str, str]]:
    """``gate roc_auc[region]  4 slices of region >= 0.65 passed``: slice and fairness gates."""
    from rich.markup import escape

    by_gate: dict[str, list[dict]] = {}
    for gate in gates:
        if "column" in gate:
            by_gate.setdefault(str(gate["metric"]), []).append(gate)
    rows = []
    for key, entries in by_gate.items():
        skipped = sum(e["passed"] is None for e in entries)
        if entries[0].get("slice") is None and len(entries) == 1:
            text = f"{entries[0]['value']:.4g} {escape(entries[0]['bound'])}"
        else:
            scored = len(entries) - skipped
            text = f"{scored} slices of {escape(str(entries[0]['column']))} {escape(entries[0]['bound'])}"
            text += f" ({skipped} skipped: undefined)" if skipped else ""
        rows.append((f"gate {key}", f"{text} [green]passed[/]"))
    return rows


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def runtime_line(serving: dict) -> str:
    """``compiled (onnxruntime, parity on N rows, max diff x)`` or ``python (compiled model
    not used: <reason>)``: the manifest's ``serving`` entry in words."""
    parity = serving.get("parity") or {}
    if serving.get("runtime") == "compiled":
        return (
            f"compiled ({parity.get('engine', 'onnxruntime')}, parity on {parity.get('rows')} rows, "
            f"max diff {parity.get('max_abs_diff', 0):.2g})"
        )
    return f"python (compiled model not used: {serving.get('reason')})"


def _deferral(result: MonitorResult) -> str:
    """``deferred: 12.5% (5 of 40 rows, under 0.7; max 10%)``, or ``n/a`` without flags."""
    d = result.deferral
    if d["rate"] is None:
        return "deferred to a person: n/a (the current data carries no deferral flags)"
    under = f", under {d['defer_below']:g}" if d.get("defer_below") is not None else ""
    limit = f"; max {d['threshold']:.1%}" if d["threshold"] is not None else ""
    flag = "[bold red]too many[/]: " if result.deferred_too_often else ""
    rate = f"{d['rate']:.1%} ({d['deferred']} of {d['rows']} rows{under}{limit})"
    return f"{flag}deferred to a person: {rate}"


def print_drift(console: Console, result: MonitorResult) -> None:
    """The Rich drift table (column, method, score, threshold, drifted), then the verdict."""
    from rich.table import Table

    table = Table(
        title=f"{result.tag}: {result.rows} current rows vs {result.reference_rows} reference rows"
    )
    for name in ("column", "method", "score", "threshold", "drifted"):
        table.add_column(name, justify="right" if name in ("score", "threshold") else "left")
    rows = [*result.columns, *([result.prediction] if result.prediction else [])]
    for row in rows:
        label = f"{row.column} [dim](model output)[/]" if row is result.prediction else row.column
        flag = "[bold red]yes[/]" if row.drifted else "[green]no[/]"
        table.add_row(label, row.method, f"{row.score:.4g}", f"{row.threshold:.4g}", flag)
    console.print(table)
    if result.left_out:
        from nb2prod.monitoring.columns import describe

        console.print(f"left out of drift: {describe(result.left_out)}")
    if result.quality:
        quality_table = Table(title="quality on current data vs training")
        shipped = any("evaluation" in q for q in result.quality)  # the bento's held-out rows
        for name in ("metric", "current", "training", "change", "gate"):
            quality_table.add_column(name)
        if shipped:
            quality_table.add_column("evaluation data")
        for q in result.quality:
            gate = q.get("gate") or ""
            if q.get("gate_passed") is not None:
                gate += " [green]passed[/]" if q["gate_passed"] else " [bold red]failed[/]"
            training, change = q.get("training"), q.get("change")
            quality_table.add_row(
                q["metric"],
                f"{q['current']:.4g}",
                "" if training is None else f"{training:.4g}",
                "" if change is None else f"{change:+.4g}",
                gate,
                *([_number(q.get("evaluation"))] if shipped else []),
            )
        console.print(quality_table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(_deferral(result))
    share = f"{result.drifted_share:.0%} of columns drifted (threshold {result.drift_share:.0%})"
    if result.drift:
        console.print(
            f"[bold red]drift[/]: {share}; drifted: {', '.join(result.drifted_columns) or 'none'}"
        )
    else:
        console.print(f"[green]no drift[/]: {share}")
    for path in (result.html, result.quality_html, result.json):
        if path:
            console.print(f"wrote {path}")
