"""What ``nb2prod shadow`` shows: the Rich summary, and the HTML page (tables, then Evidently's)."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from nb2prod.lifecycle.shadow import ShadowReport


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def tables(report: ShadowReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, header, rows) tables: what both the terminal and the page show."""
    a, b = report.champion, report.challenger
    out = [
        (
            "Bentos",
            ["", "champion", "challenger"],
            [
                ["tag", a["tag"], b["tag"]],
                ["rows accepted", f"{a['accepted']}/{a['rows']}", f"{b['accepted']}/{b['rows']}"],
                ["rows rejected", str(a["rejects"]["count"]), str(b["rejects"]["count"])],
                ["p50 latency", _ms(a["latency"]["p50_ms"]), _ms(b["latency"]["p50_ms"])],
            ],
        )
    ]
    if report.agreement is not None:
        labels = [str(v) for v in report.agreement["labels"]]
        rows = [
            [f"champion {label}", *map(str, counts)]
            for label, counts in zip(labels, report.agreement["matrix"])
        ]
        out.append(("Class flips (rows: champion, columns: challenger)", ["", *labels], rows))
    if report.differences is not None and report.differences.get("rows"):
        names = ["mean_diff", "mean_abs_diff", "p50_abs_diff", "p90_abs_diff", "p99_abs_diff"]
        rows = [[n, _num(report.differences[n])] for n in names]
        out.append(("Differences (challenger - champion)", ["", "value"], rows))
    if report.metrics:
        m = report.metrics
        rows = [
            [name, _num(value), _num(m["challenger"].get(name)), _num(m["difference"].get(name))]
            for name, value in m["champion"].items()
        ]
        title = f"Metrics on {m['rows']} row(s) with outcomes"
        out.append((title, ["metric", "champion", "challenger", "difference"], rows))
    checks = [
        [c.name, _num(c.value), c.bound, "passed" if c.passed else "FAILED"] for c in report.checks
    ]
    out.append(("Checks", ["check", "value", "bound", "result"], checks))
    return out


def print_shadow(console: Console, report: ShadowReport) -> None:
    """The comparison as tables, the first rejected rows, and the verdict."""
    from rich.table import Table

    for title, header, rows in tables(report):
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for role, side in (("champion", report.champion), ("challenger", report.challenger)):
        for reject in side["rejects"]["examples"][:3]:
            console.print(f"{role} rejects row {reject['row']}: {_why(reject)}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if report.passed:
        console.print(f"[green]passed[/]: {report.challenger['tag']} may replace the champion")
    else:
        failed = ", ".join(c.name for c in report.checks if not c.passed)
        console.print(f"[bold red]failed[/]: {failed}")


def _why(reject: dict[str, Any]) -> str:
    if reject.get("error"):
        return reject["error"]
    parts = [f"{f['column']} {f['check']} ({f['value']!r})" for f in reject["failures"][:3]]
    return "; ".join(parts)


def html_page(report: ShadowReport, evidently: str | None) -> str:
    """A page with the report's tables and rejected rows, and Evidently's shift report below."""
    body = [f"<h1>Shadow: {html.escape(report.challenger['tag'])} against "]
    body.append(f"{html.escape(report.champion['tag'])}</h1>")
    verdict = "passed" if report.passed else "failed"
    body.append(f"<p class='{verdict}'>{verdict} on {report.compared} row(s) both accepted</p>")
    for title, header, rows in tables(report):
        body.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        body += [f"<th>{html.escape(h)}</th>" for h in header]
        body.append("</tr>")
        for row in rows:
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        body.append("</table>")
    for role, side in (("champion", report.champion), ("challenger", report.challenger)):
        if side["rejects"]["examples"]:
            shown = json.dumps(side["rejects"]["examples"], indent=2, default=str)
            body.append(f"<h2>Rows the {role} rejects (first)</h2><pre>{html.escape(shown)}</pre>")
    if evidently:
        body.append("<h2>Prediction shift (Evidently)</h2>")
        body.append(
            f'<iframe srcdoc="{html.escape(evidently, quote=True)}" '
            "style='width:100%;height:900px;border:0'></iframe>"
        )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}.passed{color:green}.failed{color:red}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>nb2prod shadow</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
