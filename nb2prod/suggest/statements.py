"""Imperative feature statements -> the body of one ``features(df)``, learned constants, notes."""

from __future__ import annotations

import ast
import copy

from nb2prod.errors import SuggestError
from nb2prod.suggest.learn import (
    FRAME,
    ROW_OPS,
    Lift,
    Rename,
    Rewrite,
    kw,
)
from nb2prod.suggest.plan import (
    Note,
    Plan,
    Statement,
    column_of,
    is_load,
    names_in,
    parse_cell,
    root,
)


def _written(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _inplace(node: ast.stmt) -> ast.Call | None:
    """An expression statement ``x.method(..., inplace=True)``."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        flag = kw(node.value, "inplace")
        if isinstance(flag, ast.Constant) and flag.value is True:
            return node.value
    return None


def _without_inplace(call: ast.Call) -> ast.stmt:
    """``df[c].fillna(v, inplace=True)`` -> ``df[c] = df[c].fillna(v)``; ``df.drop(...)`` too."""
    call = copy.deepcopy(call)
    call.keywords = [k for k in call.keywords if k.arg != "inplace"]
    target = copy.deepcopy(call.func.value)
    target.ctx = ast.Store()
    for sub in ast.walk(target):
        if isinstance(sub, (ast.Name, ast.Attribute, ast.Subscript)) and sub is not target:
            sub.ctx = ast.Load()
    if isinstance(target, ast.Attribute):  # df.Age.fillna(...) -> df["Age"] = ...
        target = ast.Subscript(target.value, ast.Constant(target.attr), ast.Store())
    return ast.Assign([target], call, lineno=0)


class Lifter:
    """Walks the feature cells in order and builds the :class:`Rewrite`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.nb = plan.notebook
        self.out = Rewrite()
        self.lists: dict[str, tuple[Statement, list[str]]] = {}  # combine -> (where, frames)
        self.rebound: dict[str, Statement] = {}  # frame -> its rebinding statement
        self.upcoming: list[Statement] = []  # the statements after this one, at its level

    def frames(self) -> set[str]:
        return {self.plan.train, *self.plan.tests}

    def note(self, kind: str, s: Statement, text: str) -> None:
        self.out.notes.append(Note(kind, s.cell.index, s.cell.id, s.line, text))

    def run(self, statements: list[Statement]) -> Rewrite:
        for i, s in enumerate(statements):
            self.upcoming = statements[i + 1 :]
            self.statement(s)
        used = set().union(set(), *(names_in(n) for n in self.out.body))
        for text, _ in self.out.imports:
            used |= names_in(ast.parse(text))
        self.out.imports = [
            text
            for text, bound in self.out.imports
            if bound & used or not isinstance(ast.parse(text).body[0], ast.Import | ast.ImportFrom)
        ]
        return self.out

    def column_later(self, name: str) -> str | None:
        """The frame column a later statement writes ``name`` into (``df.loc[m, "c"] = name``)."""
        for s in self.upcoming:
            node = s.node
            if name in names_in(getattr(node, "value", ast.Pass())):
                for target in _written(node):
                    column = column_of(target)
                    if column:
                        return column
        return None

    def statement(self, s: Statement, renames: dict[str, str] | None = None) -> None:
        node = s.node
        train, tests = self.plan.train, set(self.plan.tests)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {(a.asname or a.name).split(".")[0] for a in node.names}
            self.out.imports.append((ast.unparse(node), bound))
            return
        if is_load(node):
            return
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            self.loop(s)
            return
        if self.list_of_frames(s):
            return
        used = names_in(node) | {k for k in (renames or {}) if k in names_in(node)}
        writes = [root(t) for t in _written(node)]
        call = _inplace(node)
        if call is not None:
            writes.append(root(call))
        if (
            writes
            and all(w in tests for w in writes if w in self.frames())
            and (set(writes) & tests)
        ):
            self.note("dropped", s, "left out: it only changes the test frame")
            return
        names = dict(renames or {})
        names[train] = FRAME
        if isinstance(node, ast.Expr) and call is None:
            return  # a bare expression shows something; it changes nothing
        if used & tests and not used & {train, *names}:
            self.note("dropped", s, "left out: it only reads the test frame")
            return
        self.lift(s, names)

    def list_of_frames(self, s: Statement) -> bool:
        node = s.node
        if not (isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple))):
            return False
        members = [getattr(e, "id", None) for e in node.value.elts]
        if not members or not set(members) <= self.frames():
            return False
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.lists[target.id] = (s, members)
        return True

    def loop(self, s: Statement) -> None:
        node = s.node
        over = node.iter
        if isinstance(over, ast.Name) and over.id in self.lists:
            built, members = self.lists[over.id]
            self.check_stale(s, over.id, built, members, node)
        elif isinstance(over, (ast.List, ast.Tuple)):
            members = [getattr(e, "id", None) for e in over.elts]
        else:
            self.lift(s, {self.plan.train: FRAME})
            return
        if self.plan.train not in members:
            if set(members) <= self.frames():
                self.note("dropped", s, "left out: the loop only changes the test frame")
                return
            self.lift(s, {self.plan.train: FRAME})
            return
        body = [Statement(inner, s.cell) for inner in node.body]
        for i, sub in enumerate(body):  # the body runs once, on the one frame
            self.upcoming = body[i + 1 :]
            self.statement(sub, {node.target.id: FRAME})

    def check_stale(self, s: Statement, name: str, built: Statement, members, node) -> None:
        train = self.plan.train
        again = self.rebound.get(train)
        if again is None or (again.cell.index, again.line) < (built.cell.index, built.line):
            return
        text = (
            f"the original notebook's loop in cell {s.cell.index} line {s.line} changed the "
            f"old {train}: cell {again.cell.index} line {again.line} rebound {train} after "
            f"{name} was built (cell {built.cell.index} line {built.line})"
        )
        self.note("bug", s, text + "; the suggestion applies the loop to the frame")
        for inner in ast.walk(node):
            for target in _written(inner) if isinstance(inner, ast.stmt) else []:
                column = column_of(target)
                if column:
                    self.out.stale_columns[column] = text

    def lift(self, s: Statement, names: dict[str, str]) -> None:
        node = Rename(names).visit(copy.deepcopy(s.node))
        for target in _written(s.node):
            if isinstance(target, ast.Name) and target.id in self.frames():
                self.rebound[target.id] = s
        call = _inplace(node)
        if call is not None and root(call) == FRAME:
            node = _without_inplace(call)
        column = next((column_of(t) for t in _written(node) if root(t) == FRAME), None)
        if column is None and _written(node) and isinstance(_written(node)[0], ast.Name):
            column = self.column_later(_written(node)[0].id)
        lifter = Lift(self.out, s, column)
        try:
            node = lifter.visit(node)
        except SuggestError as exc:
            raise _located(self.nb, exc) from None
        self.refuse_row_ops(s, node)
        ast.fix_missing_locations(node)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            self.out.imports.append((ast.unparse(node), {node.name}))
        else:
            self.out.body.append(node)
            self.out.replay.append((lifter.new, node))
        self.out.lifted_cells.add(s.cell.index)

    def refuse_row_ops(self, s: Statement, node: ast.stmt) -> None:
        writes_frame = any(root(t) == FRAME for t in _written(node))
        target = self.plan.target
        for sub in ast.walk(node):
            if (
                writes_frame
                and isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and sub.func.attr in ROW_OPS
                and root(sub) == FRAME
            ):
                if sub.func.attr == "dropna" and kw(sub, "axis") is not None:
                    continue
                self.cannot(s, f"calls .{sub.func.attr}(), which {ROW_OPS[sub.func.attr]}")
            if (
                target
                and isinstance(sub, ast.Constant)
                and sub.value == target
                and names_in(node) & {FRAME}
            ):
                self.cannot(s, f"uses the target column {target!r}, which requests do not have")

    def cannot(self, s: Statement, why: str) -> None:
        raise SuggestError(
            f"{self.nb.path.name}: {s.cell.where}, line {s.line} {why}; nb2prod suggest "
            "cannot turn it into code for one frame (compute it inside the model, or leave "
            "it out of the feature cells).",
            notebook=str(self.nb.path),
            cell_index=s.cell.index,
            cell_id=s.cell.id,
            line=s.line,
        )


def _located(nb, exc: SuggestError) -> SuggestError:
    return SuggestError(f"{nb.path.name}: {exc.message}", notebook=str(nb.path), **exc.fields)


def prune(body: list[ast.stmt], keep: set[str]) -> list[ast.stmt]:
    """Drop assignments to plain names that nothing after them reads (dead after lifting)."""
    body = list(body)
    changed = True
    while changed:
        changed = False
        for i in range(len(body) - 1, -1, -1):
            node = body[i]
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target = node.targets[0]
            if not isinstance(target, ast.Name) or target.id in keep:
                continue
            later = set().union(*(names_in(n) for n in body[i + 1 :])) if body[i + 1 :] else set()
            if target.id not in later:
                del body[i]
                changed = True
    return body


def feature_statements(plan: Plan) -> list[Statement]:
    """The statements to lift: the load cell after the load, the feature cells, then the X
    cell before X is assigned."""
    nb = plan.notebook
    out = []
    load_stmts = parse_cell(nb, plan.load.cell)
    after = [n for n in load_stmts if n.lineno > plan.load.line]
    out += [Statement(n, plan.load.cell) for n in after]
    for cell in plan.feature_cells:
        out += [Statement(n, cell) for n in parse_cell(nb, cell)]
    return out
