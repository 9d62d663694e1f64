"""``check``: every static check of a notebook, the one function every entry point calls."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from nb2prod.errors import CheckFailed, NotebookError, ParameterError
from nb2prod.gate.properties import read_settings
from nb2prod.monitoring.columns import static_ignore_problem
from nb2prod.notebook.analysis import CheckResult, Finding, analyze
from nb2prod.notebook.foreign import detect
from nb2prod.notebook.foreign import findings as foreign_findings
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
    foreign = foreign_findings(nb)
    if any(t.written == "pipeline-parameters" for t in detect(nb)):
        # Kale's parameters cell: foreign-tags names it and the command that imports it
        result.findings = [f for f in result.findings if f.code != "no-parameters"]
    result.add(_settings_findings(nb) + foreign)
    schema_sources = [c.source for c in result.plan.schema_cells]
    problem = static_ignore_problem(nb, result.plan.input_schema, schema_sources)
    if problem is not None:
        result.add([Finding("bad-setting", "error", problem, name="nb2prod.monitoring.ignore")])
    if strict and not result.ok:
        raise CheckFailed(result.findings)
    return result


def check_params(checked: CheckResult, params: dict[str, Any]) -> None:
    """Refuse a parameter value the notebook's parameters cell does not set.

    Raises:
        ParameterError: the first unknown name, with the parameters the notebook does set.
    """
    known = checked.plan.parameters
    nb = checked.notebook
    for name in params:
        if name in known:
            continue
        cells = nb.with_role("parameters")
        if not cells:
            text = "the notebook has no parameters cell, so it takes no -p values."
        else:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            said = f"; did you mean `{close[0]}`? The" if close else ": the"
            sets = ", ".join(known) if known else "no names"
            text = f"{said} parameters cell ({cells[0].where}) sets {sets}."
        raise ParameterError(
            f"{nb.path.name}: unknown parameter `{name}`" + (text if cells else f": {text}"),
            notebook=str(nb.path),
            name=name,
        )
