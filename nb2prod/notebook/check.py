"""``check``: every static check of a notebook, the one function every entry point calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nb2prod.errors import CheckFailed, NotebookError, ParameterError
from nb2prod.gate.properties import read_settings
from nb2prod.notebook.analysis import CheckResult, Finding, analyze
from nb2prod.notebook.gates import Bound
from nb2prod.notebook.read import Notebook, parse_content, read


def _settings_findings(nb: Notebook) -> list[Finding]:
    """Settings that only other stages read, validated now rather than after training."""
    found = [
        Finding("bad-setting", "error", p.message, name=f"nb2prod.{p.key}") for p in nb.problems
    ]
    try:
        read_settings(nb)
    except NotebookError as exc:
        found.append(Finding("bad-setting", "error", exc.message, name="nb2prod.properties"))
    for metric, text in nb.settings.gates.items():
        if Bound.parse(text) is None:
            found.append(
                Finding(
                    "bad-gate",
                    "error",
                    f"{nb.path.name}: gate `{metric}: {text}` is not of the form '>= 0.8'.",
                    name=metric,
                )
            )
    return found


def check(
    path: str | Path, content: dict[str, Any] | None = None, *, strict: bool = False
) -> CheckResult:
    """Read (or, with ``content``, parse) a notebook and run every static check on it.

    The CLI, the Jupyter route (with the editor's ``content``, saved or not), ``train`` and
    ``build`` all call this, so they agree on what is wrong.

    Args:
        path: the notebook's path; with ``content``, the name its findings use.
        content: the notebook JSON as an editor holds it, checked instead of the file.
        strict: raise :class:`CheckFailed` when any finding is an error.

    Returns:
        The findings and the lift plan; ``result.ok`` is false when any finding is an error.

    Raises:
        NotebookError: the notebook cannot be read or is malformed (one sentence naming the
            file, and the cell where there is one), or a top-level setting is unknown.
        CheckFailed: ``strict`` and a finding is an error; the message is the first one's.
    """
    path = Path(path)
    nb = read(path) if content is None else parse_content(content, path)
    result = analyze(nb)
    result.add(_settings_findings(nb))
    if strict and not result.ok:
        raise CheckFailed(result.findings)
    return result


def check_params(checked: CheckResult, params: dict[str, Any]) -> None:
    """Refuse a parameter value the notebook's parameters cell does not set.

    Raises:
        ParameterError: the first unknown name, with the parameters the notebook does set.
    """
    known = checked.plan.parameters
    for name in params:
        if name not in known:
            nb = checked.notebook.path.name
            cells = checked.notebook.with_role("parameters")
            where = (
                f"its parameters cell {cells[0].where}" if cells else "it has no parameters cell"
            )
            offer = f"; known parameters: {', '.join(known)}" if known else ""
            raise ParameterError(
                f"{nb}: unknown parameter `{name}`, {where} does not set it{offer}.",
                notebook=str(checked.notebook.path),
                name=name,
            )
