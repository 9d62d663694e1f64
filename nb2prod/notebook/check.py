"""``check``: every static check of a notebook, the one function every entry point calls."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from nb2prod.errors import CheckFailed, NotebookError, ParameterError
from nb2prod.gate.properties import read_settings
from nb2prod.monitoring.columns import schema_columns, static_ignore_problem
from nb2prod.notebook.analysis import CheckResult, Finding, LiftPlan, analyze
from nb2prod.notebook.foreign import detect
from nb2prod.notebook.foreign import findings as foreign_findings
from nb2prod.notebook.gates import METRICS, Gate, canonical, known_names, parse_gate
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
    metric = nb.settings.promotion.get("metric")
    if metric is not None and canonical(metric) is None:
        close = difflib.get_close_matches(metric, known_names(), n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(METRICS)}."
        text = (
            f"{nb.path.name}: notebook setting nb2prod.promotion.metric is `{metric}`, which "
            f"is no metric nb2prod computes on evaluation data; {hint}"
        )
        found.append(Finding("bad-setting", "error", text, name="nb2prod.promotion"))
    return found


def _gate_findings(nb: Notebook, plan: LiftPlan) -> list[Finding]:
    """Gate names read statically: the metric, the column, the evaluation data, the task."""
    name, found = nb.path.name, []
    schema = plan.input_schema
    sources = [c.source for c in plan.schema_cells]
    columns = schema_columns(sources, schema) if schema else None
    gates = [parse_gate(key, text) for key, text in nb.settings.gates.items()]

    def add(code: str, gate: Gate, text: str) -> None:
        found.append(Finding(code, "error", f"{name}: {text}", name=gate.key))

    for gate in gates:
        if gate.problem:
            add(gate.problem[0], gate, gate.problem[1])
        elif gate.on_evaluation and plan.evaluation is None:
            why = (
                "nb2prod.evaluation is {} (none)"
                if nb.settings.evaluation == {}
                else "no cell assigns X_test and y_test"
            )
            add(
                "gate-no-evaluation",
                gate,
                f"gate `{gate.key}` is computed on evaluation data, and there is none: {why}; "
                'set nb2prod.evaluation to the held-out rows and outcomes (such as {"X": '
                '"X_test", "y": "y_test"}).',
            )
        elif gate.on_evaluation and columns is not None and gate.column not in columns:
            close = difflib.get_close_matches(gate.column, columns, n=1, cutoff=0.6)
            hint = (
                f"did you mean `{close[0]}`?" if close else f"its columns are {', '.join(columns)}."
            )
            add(
                "gate-column",
                gate,
                f"gate `{gate.key}` groups by `{gate.column}`, which is not a column of the "
                f"input schema {schema}; {hint}",
            )
    classifier = next(
        (g for g in gates if not g.problem and g.classifier_only and g.on_evaluation), None
    )
    regressor = next((g for g in gates if not g.problem and g.regressor_only), None)
    if classifier and regressor:
        add(
            "gate-task",
            regressor,
            f"gates `{classifier.key}` (a classifier's metric) and `{regressor.key}` (a "
            "regressor's) cannot both be computed for one model.",
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
    result.add(_settings_findings(nb) + _gate_findings(nb, result.plan) + foreign)
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
