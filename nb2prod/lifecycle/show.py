"""What ``nb2prod versions`` prints, with Rich: the versions of a service, then its history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from nb2prod.lifecycle.registry import Version


def gate_text(version: Version) -> str:
    """``roc_auc >= 0.7 ✓``, one gate a line, then the property gate (markup)."""
    parts = []
    for gate in version.gates:
        passed = gate.get("passed")
        verdict = {True: "[green]✓[/]", False: "[bold red]✗ failed[/]"}.get(
            passed, "[yellow]– skipped[/]"
        )
        where = f" ({gate.get('column')} = {gate['slice']!r})" if gate.get("slice") else ""
        parts.append(f"{gate.get('metric')} {gate.get('bound')} {verdict}{where}")
    if version.property_gate:
        held = version.property_gate == "passed"
        parts.append(
            "properties " + ("[green]✓[/]" if held else f"[yellow]{version.property_gate}[/]")
        )
    return "\n".join(parts) or "none"


def print_versions(
    console: Console, name: str, versions: list[Version], history: list[dict[str, Any]]
) -> None:
    """One row per version (aliases, bento, metrics, gates, build time; the status when the
    bento left the store), then one line per promotion or rollback, oldest first."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=escape(f"{name}: {len(versions)} version(s)"),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for column in ("version", "alias", f"bento {name}:", "metrics", "gates", "built"):
        # tags and aliases are read and copied whole; metrics and gates go one a line
        table.add_column(column, no_wrap=column != "gates")
    for v in versions:
        metrics = "\n".join(f"{k} {value:.4g}" for k, value in v.metrics.items())
        bento = escape(v.bento_tag.removeprefix(f"{name}:"))
        if v.status != "ready":
            bento += f"\n[bold red]{escape(v.status)}[/]"
        table.add_row(
            str(v.number),
            escape("\n".join(v.aliases)),
            bento,
            escape(metrics),
            gate_text(v),
            escape(v.build_time.replace("T", " ")[5:16]),
        )
    console.print(table)
    if not history:
        console.print("no promotion or rollback yet")
        return
    console.print("history:")
    for event in history:
        console.print(escape(event_line(event)), soft_wrap=True)


def event_line(event: dict[str, Any]) -> str:
    """``2026-12-01 16:25 alice promote version 2 (was 1): reason``: one history event."""
    when = str(event.get("time", "")).replace("T", " ")[:16]
    text = f"{when} {event.get('user', '?')} {event.get('action', '?')}"
    if event.get("version") is not None:
        text += f" version {event['version']}"
    if event.get("previous") is not None:
        text += f" (was {event['previous']})"
    if event.get("forced"):
        text += " --force"
    if event.get("reason"):
        text += f": {event['reason']}"
    figures = event.get("figures") or {}
    compared = figures.get("comparison")
    if compared:
        text += (
            f"; {compared['metric']} {compared['challenger']:.4g} against the champion's "
            f"{compared['champion']:.4g} (min_delta {compared['min_delta']:g}, "
            f"{compared['rows']} evaluation rows)"
        )
    if figures.get("shadow"):
        text += f"; shadow passed on {figures['shadow'].get('rows', '?')} traffic rows"
    return text


def print_decision(console: Console, decision: Any) -> None:
    """What ``nb2prod promote`` or ``rollback`` did, and the figures that decided it."""
    from rich.markup import escape

    moved = f"{decision.name}@champion is version {decision.version}"
    was = f" (was {decision.previous})" if decision.previous is not None else ""
    console.print(f"[green]{decision.action}[/]: {escape(moved + was)}")
    line = event_line({**decision.to_dict(), "time": "", "user": ""}).strip()
    extra = line.split("; ", 1)[1] if "; " in line else ""
    if extra:
        console.print(escape(extra), soft_wrap=True)
