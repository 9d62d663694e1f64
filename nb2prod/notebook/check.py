"""``check``: every static check of a notebook, the one function every entry point calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nb2prod.errors import CheckFailed, NotebookError
from nb2prod.gate.properties import read_settings
from nb2prod.notebook.analysis import CheckResult, Finding, analyze
from nb2prod.notebook.gates import Bound
from nb2prod.notebook.read import Notebook, parse, read


def _settings_findings(nb: Notebook) -> list[Finding]:
    """Settings that only other stages read, validated now rather than after training."""
    found = []
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
        NotebookError: the notebook cannot be read, or a top-level setting is unknown.
        CheckFailed: ``strict`` and a finding is an error; the message is the first one's.
    """
    path = Path(path)
    nb = read(path) if content is None else parse(json.dumps(content), path)
    result = analyze(nb)
    result.add(_settings_findings(nb))
    if strict and not result.ok:
        raise CheckFailed(result.findings)
    return result
