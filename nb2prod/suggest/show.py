"""What ``nb2prod suggest`` prints: the diff, the notes and the parity table (Rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from nb2prod.suggest.suggestion import Suggestion

_STYLE = {"deliberate": "yellow", "dropped": "dim", "cannot": "red", "bug": "magenta"}


def print_suggestion(console: Console, suggestion: Suggestion) -> None:
    """The unified diff as syntax, one line per note, and the parity table."""
    from rich.syntax import Syntax

    diff = suggestion.diff or "(no change)"
    if console.is_terminal:
        console.print(Syntax(diff, "diff", word_wrap=True))
    else:  # a file or a pipe: every line whole, as `patch` and a reviewer need it
        console.out(diff, highlight=False)
    for note in suggestion.notes:
        where = f"cell {note.cell_index}, line {note.line}" if note.cell_index is not None else ""
        style = _STYLE.get(note.kind, "")
        console.print(f"[{style}]{note.kind}[/] {where}: {note.text}", highlight=False)
    print_parity(console, suggestion.parity)


def print_parity(console: Console, parity: dict, notes: list | None = None) -> None:
    """The per-column parity table, the identical columns and the verdict (and ``notes``)."""
    from rich.table import Table

    for note in notes or []:
        where = f"cell {note.cell_index}, line {note.line}" if note.cell_index is not None else ""
        console.print(f"[{_STYLE.get(note.kind, '')}]{note.kind}[/] {where}: {note.text}")
    table = Table(title=f"feature parity on {parity['rows']} training rows")
    for name in ("column", "rows differing", "examples (index: original -> features)", "why"):
        table.add_column(name)
    for column in parity["columns"]:
        if not column["differ"]:
            continue
        examples = "; ".join(
            f"{e['index']}: {e['original']!r} -> {e['suggested']!r}" for e in column["examples"]
        )
        table.add_row(column["column"], str(column["differ"]), examples, column["reason"])
    same = [c["column"] for c in parity["columns"] if not c["differ"]]
    console.print(table)
    if same:
        console.print(f"identical: {', '.join(same)}", highlight=False)
    verdict = "[green]parity ok[/]" if parity["ok"] else "[red]unexplained differences[/]"
    console.print(verdict)
