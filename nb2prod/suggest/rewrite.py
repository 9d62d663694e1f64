"""The suggested cells as text: the raw snapshot, learned constants, features, X and train."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from nb2prod.errors import SuggestError
from nb2prod.suggest.plan import Note, Plan, names_in, parse_cell, root, target_of
from nb2prod.suggest.statements import FRAME, Rewrite, prune

REFERENCE = "X_raw"
INPUT_MODEL, OUTPUT_MODEL = "RawInput", "ModelInput"


@dataclass
class XCell:
    """The X cell rewritten: X from ``features(X_raw)``, y kept, the rest as it was."""

    frames: list[str] = field(default_factory=list)  # X, y and test inputs
    rest: list[str] = field(default_factory=list)  # every other statement, in order
    ordered: list[str] = field(default_factory=list)  # both, in the original order
    tail: list[str] = field(default_factory=list)  # the features body's last statements


def _columns(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]
    return None


def _selection(plan: Plan, value: ast.expr) -> list[str]:
    """``T.drop([...], axis=1)``, ``T.drop(columns=[...])``, ``T[cols]``, ``T.copy()``: the
    statements that end ``features`` so it returns what X was."""
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "copy"
    ):
        value = value.func.value
    if isinstance(value, ast.Name) and value.id == plan.train:
        return []
    func = value.func if isinstance(value, ast.Call) else None
    if isinstance(func, ast.Attribute) and func.attr == "drop" and root(func.value) == plan.train:
        given = value.args[0] if value.args else None
        given = next((k.value for k in value.keywords if k.arg == "columns"), given)
        columns = _columns(given) if given is not None else None
        if columns is not None:
            columns = [c for c in columns if c != plan.target]
            return [f"{FRAME} = {FRAME}.drop(columns={columns!r})"] if columns else []
    if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
        key = value.slice
        if isinstance(key, ast.Tuple) and len(key.elts) == 2:  # T.loc[:, cols]
            key = key.elts[1]
        if not isinstance(key, ast.Slice):
            return [f"{FRAME} = {FRAME}[{ast.unparse(key)}]"]
    s = plan.x_cell
    raise SuggestError(
        f"{plan.notebook.path.name}: {s.where} derives `{plan.x_source}` as "
        f"`{ast.unparse(value)}`; nb2prod suggest reads X as a drop or a selection of "
        f"columns of `{plan.train}`.",
        notebook=str(plan.notebook.path),
        cell_index=s.index,
        cell_id=s.id,
        name=plan.x_source,
    )


def x_cell(plan: Plan, notes: list[Note]) -> XCell:
    """Rewrite the cell that derives X (and y, and the test inputs) from the frames."""
    out = XCell()
    cell = plan.x_cell
    for node in parse_cell(plan.notebook, cell):
        text = ast.unparse(node)
        frame = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            source = root(node.value)
            name = target.id if isinstance(target, ast.Name) else None
            if name == plan.x_source and source == plan.train:
                out.tail = _selection(plan, node.value)
                frame = f"{name} = {plan.notebook.settings.entrypoint}({REFERENCE})"
            elif source == plan.train and target_of(node.value, plan.train):
                frame = text
            elif name and source in plan.tests:
                ep = plan.notebook.settings.entrypoint
                frame = f"{name} = {ep}({source}[{REFERENCE}.columns])"
                notes.append(
                    Note(
                        "dropped",
                        cell.index,
                        cell.id,
                        node.lineno,
                        f"`{name}` is now {frame.split(' = ', 1)[1]}: the test frame goes "
                        "through the same features as the training frame",
                    )
                )
        if frame is not None:
            out.frames.append(frame)
            out.ordered.append(frame)
        else:
            out.rest.append(text)
            out.ordered.append(text)
    return out


def snapshot_cell(plan: Plan) -> str:
    drop = f".drop(columns=[{plan.target!r}])" if plan.target else ""
    return (
        "# The raw training inputs, as requests will send them: the features function's input\n"
        "# and the bento's reference data (notebook setting nb2prod.reference).\n"
        f"{REFERENCE} = {plan.train}{drop}.copy()"
    )


def learned_cell(rewrite: Rewrite, used: set[str]) -> str | None:
    """Computes each learned constant on the raw training frame, after exactly the
    statements that ran before it in the original cells."""
    if not used:
        return None
    lines = [
        "# Learned constants: statistics of the training frame, computed once in training and",
        "# lifted with their values (notebook setting nb2prod.learned). Each is computed after",
        "# the same steps that preceded it in the original cells.",
        *rewrite.imports,
        f"{FRAME} = {REFERENCE}.copy()",
    ]
    last = max(i for i, (new, _) in enumerate(rewrite.replay) if new)
    for new, node in rewrite.replay[: last + 1]:
        for item in new:
            lines.append(f"{item.name} = {item.expr}  # cell {item.cell_index}, line {item.line}")
        lines.append(ast.unparse(node))
    lines.append(f"del {FRAME}")
    return "\n".join(lines)


def features_body(rewrite: Rewrite, tail: list[str]) -> list[ast.stmt]:
    body = rewrite.body + [ast.parse(t).body[0] for t in tail]
    return prune(body, {FRAME})


def features_cell(plan: Plan, rewrite: Rewrite, body: list[ast.stmt]) -> str:
    ep = plan.notebook.settings.entrypoint
    lines = [*rewrite.imports, "", ""] if rewrite.imports else []
    lines += [
        f"def {ep}({FRAME}: DataFrame[{INPUT_MODEL}]) -> DataFrame[{OUTPUT_MODEL}]:",
        f'    """The feature cells of {plan.notebook.path.name}, for one frame of any number of',
        '    rows: the input is not changed, training statistics are learned constants."""',
        f"    {FRAME} = {FRAME}.copy()",
    ]
    for node in body:
        lines += ["    " + line for line in ast.unparse(node).splitlines()]
    lines.append(f"    return {FRAME}")
    return "\n".join(lines)


def used_learned(rewrite: Rewrite, body: list[ast.stmt]) -> list[str]:
    used = set().union(*(names_in(n) for n in body)) if body else set()
    return [item.name for item in rewrite.learned if item.name in used]
