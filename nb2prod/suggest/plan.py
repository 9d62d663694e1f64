"""Static plan of an imperative notebook: the training frame, its load, the fit, X and y."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nb2prod.errors import SuggestError

if TYPE_CHECKING:
    from nb2prod.notebook.read import Cell, Notebook

READERS = ("read_csv", "read_parquet", "read_excel", "read_json", "read_feather", "read_table")
METRIC_WORDS = ("score", "accuracy", "auc", "error", "f1", "precision", "recall", "r2")


@dataclass(frozen=True)
class Note:
    """One thing the suggestion tells its reader, at a cell and line of the original."""

    kind: str  # "deliberate" | "dropped" | "cannot" | "bug"
    cell_index: int | None
    cell_id: str | None
    line: int | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "cell_index": self.cell_index,
            "cell_id": self.cell_id,
            "line": self.line,
            "text": self.text,
        }


@dataclass
class Statement:
    """A top-level statement of a code cell, with where it is."""

    node: ast.stmt
    cell: Cell

    @property
    def line(self) -> int:
        return self.node.lineno


@dataclass
class Plan:
    """Where the pieces of an imperative notebook are (found without a kernel)."""

    notebook: Notebook
    train: str  # the training frame's variable
    tests: list[str]  # other frames loaded from files
    load: Statement  # the load of the training frame
    fit: Statement  # the fit call
    model: str  # the fitted estimator's variable
    x_fit: str  # X and y as the fit call names them
    y_fit: str
    x_cell: Cell  # the cell that derives X from the training frame
    x_source: str  # the variable assigned from the training frame (X_train, or X before a split)
    target: str | None  # y's column in the training frame
    feature_cells: list[Cell] = field(default_factory=list)  # between load and the X cell
    evaluate: Cell | None = None

    def where(self, cell: Cell, line: int | None = None) -> str:
        at = f", line {line}" if line else ""
        return f"{self.notebook.path.name}: {cell.where}{at}"


def parse_cell(nb: Notebook, cell: Cell) -> list[ast.stmt]:
    """The cell's statements; IPython magics and shell lines refuse the suggestion."""
    try:
        return ast.parse(cell.source).body
    except SyntaxError as exc:
        raise SuggestError(
            f"{nb.path.name}: {cell.where}, line {exc.lineno} is not plain Python "
            f"({exc.msg}); nb2prod suggest reads code cells as Python.",
            notebook=str(nb.path),
            cell_index=cell.index,
            cell_id=cell.id,
            line=exc.lineno,
        ) from None


def root(node: ast.AST) -> str | None:
    """The variable at the root of ``a["x"].b.c(...)[0]``, or None."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            return None


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def column_of(node: ast.AST) -> str | None:
    """``df["Age"]``, ``df.Age``, ``df.loc[m, "Age"]`` -> ``Age``: the first column named."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Subscript):
            key = sub.slice
            if isinstance(key, ast.Tuple) and len(key.elts) == 2:
                key = key.elts[1]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                return key.value
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Name)
            and not sub.attr.startswith("_")
            and sub.attr not in ("loc", "iloc", "str", "values")
            and sub.attr[:1].isupper()
        ):
            return sub.attr
    return None


def is_load(node: ast.stmt) -> bool:
    """``name = pd.read_csv(...)`` and the other ``pd.read_*``."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and isinstance(value, ast.Call):
            func = value.func
            return isinstance(func, ast.Attribute) and func.attr in READERS
    return False


def _loads(stmts: list[Statement]) -> dict[str, Statement]:
    """Frames assigned from ``pd.read_*``: variable -> the (last) load statement."""
    found = {}
    for s in stmts:
        if is_load(s.node):
            found[s.node.targets[0].id] = s
    return found


def _fit(nb: Notebook, stmts: list[Statement]) -> tuple[Statement, str, str, str]:
    """The fit: ``m.fit(X, y)`` or ``m = Est(...).fit(X, y)``, in the train cell if tagged."""
    tagged = {c.index for c in nb.with_role("train")}
    found = []
    for s in stmts:
        for call in ast.walk(s.node):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr != "fit" or len(call.args) < 2:
                continue
            x, y = call.args[:2]
            if not (isinstance(x, ast.Name) and isinstance(y, ast.Name)):
                continue
            receiver = call.func.value
            if isinstance(receiver, ast.Name):
                model = receiver.id
            elif isinstance(s.node, ast.Assign) and isinstance(s.node.targets[0], ast.Name):
                model = s.node.targets[0].id
            else:
                continue
            found.append((s, model, x.id, y.id))
    if not found:
        raise SuggestError(
            f"{nb.path.name}: no cell calls `<model>.fit(X, y)` with X and y as variables, "
            "so nb2prod suggest cannot tell the training frame from the rest.",
            notebook=str(nb.path),
        )
    in_train = [f for f in found if f[0].cell.index in tagged]
    return (in_train or found)[-1]


def _assignment(stmts: list[Statement], name: str, before: Statement) -> Statement | None:
    """The last statement before ``before`` that assigns ``name`` (plain or tuple target)."""
    last = None
    for s in stmts:
        if s is before:
            break
        node = s.node
        if isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                if any(isinstance(e, ast.Name) and e.id == name for e in elts):
                    last = s
    return last


def _split_source(s: Statement, name: str) -> str | None:
    """``X_tr, X_val, ... = train_test_split(X, y, ...)``: the frame X_tr comes from."""
    node = s.node
    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
        return None
    func = node.value.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    target = node.targets[0]
    if called != "train_test_split" or not isinstance(target, ast.Tuple):
        return None
    position = [getattr(e, "id", None) for e in target.elts].index(name)
    arg = node.value.args[position // 2] if len(node.value.args) > position // 2 else None
    return arg.id if isinstance(arg, ast.Name) else None


def target_of(value: ast.expr, train: str) -> str | None:
    """``train["y"]`` or ``train.y``: the column y is."""
    if isinstance(value, ast.Subscript) and root(value) == train:
        key = value.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
    if (
        isinstance(value, ast.Attribute)
        and isinstance(value.value, ast.Name)
        and value.value.id == train
    ):
        return value.attr
    return None


def runs(nb: Notebook, cell: Cell) -> bool:
    """A cell the original notebook runs: not a skip cell (nb2prod's or Kale's), not lifted."""
    tags = nb.node["cells"][cell.index].get("metadata", {}).get("tags", [])
    return cell.role not in ("skip", "schema", "features") and "skip" not in tags


def make_plan(nb: Notebook) -> Plan:
    """Find load, fit, X and y; the cells between load and X are the feature cells.

    Raises:
        SuggestError: there is no fit on variables, or X does not come from a loaded frame.
    """
    runnable = [c for c in nb.cells if runs(nb, c)]
    stmts = [Statement(node, c) for c in runnable for node in parse_cell(nb, c)]
    fit, model, x_fit, y_fit = _fit(nb, stmts)
    loads = _loads(stmts)
    x_name, x_stmt = x_fit, _assignment(stmts, x_fit, fit)
    y_name = y_fit
    if x_stmt is not None:
        source = _split_source(x_stmt, x_fit)
        if source is not None:
            y_src = _split_source(x_stmt, y_fit)
            x_name, x_stmt = source, _assignment(stmts, source, x_stmt)
            y_name = y_src or y_fit
    train = root(x_stmt.node.value) if x_stmt is not None else None
    if x_stmt is None or train not in loads:
        raise SuggestError(
            f"{nb.path.name}: {fit.cell.where}, line {fit.line} fits on `{x_fit}`, which is "
            "not derived from a frame read with pd.read_*; nb2prod suggest needs the "
            "training frame's load.",
            notebook=str(nb.path),
            cell_index=fit.cell.index,
            cell_id=fit.cell.id,
            line=fit.line,
            name=x_fit,
        )
    load = loads[train]
    y_stmt = _assignment(stmts, y_name, fit)
    target = target_of(y_stmt.node.value, train) if y_stmt is not None else None
    order = [c.index for c in runnable]
    between = order[order.index(load.cell.index) + 1 : order.index(x_stmt.cell.index)]
    feature_cells = [c for c in runnable if c.index in between]
    plan = Plan(
        notebook=nb,
        train=train,
        tests=[n for n in loads if n != train],
        load=load,
        fit=fit,
        model=model,
        x_fit=x_fit,
        y_fit=y_fit,
        x_cell=x_stmt.cell,
        x_source=x_name,
        target=target,
        feature_cells=feature_cells,
    )
    plan.evaluate = _evaluate(nb, fit.cell)
    return plan


def _evaluate(nb: Notebook, fit_cell: Cell) -> Cell | None:
    """The evaluate cell: tagged, or the first cell after the fit that computes a score."""
    tagged = nb.with_role("evaluate")
    if tagged:
        return tagged[0]
    for cell in nb.cells:
        if cell.index <= fit_cell.index or cell.role == "skip":
            continue
        text = cell.source.lower()
        if any(word in text for word in METRIC_WORDS):
            return cell
    return None
