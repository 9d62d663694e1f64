"""Statistics of the training frame and random draws -> learned constants (an AST pass)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from nb2prod.errors import SuggestError
from nb2prod.suggest.plan import Note, Statement, column_of, root

FRAME = "df"
STATS = ("mean", "median", "std", "var", "mode", "min", "max", "quantile", "idxmax")
RANDOM = ("randint", "uniform", "normal", "random_integers")
ROW_OPS = {
    "groupby": "groups rows of the whole frame",
    "merge": "merges in another table",
    "join": "joins another table",
    "shift": "reads other rows (shift)",
    "rolling": "reads other rows (rolling)",
    "expanding": "reads other rows (expanding)",
    "diff": "reads other rows (diff)",
    "rank": "ranks rows against each other",
    "cumsum": "accumulates over rows",
    "cumprod": "accumulates over rows",
    "transform": "computes over groups of rows",
    "pct_change": "reads other rows (pct_change)",
    "drop_duplicates": "drops rows, which the service must answer",
    "dropna": "drops rows, which the service must answer",
    "sort_values": "reorders rows",
    "query": "drops rows, which the service must answer",
    "sample": "draws rows at random",
    "value_counts": "counts over the whole frame",
}


@dataclass
class Learned:
    """A constant computed on the training frame: its name, expression and origin."""

    name: str
    expr: str  # in terms of ``df`` at the point of the statement that uses it
    cell_index: int
    line: int


@dataclass
class Rewrite:
    """The lifted body of ``features``, the learned replay, and what the notes say."""

    imports: list = field(default_factory=list)  # imports and defs (text, names they bind)
    body: list[ast.stmt] = field(default_factory=list)
    # the learned cell: (learned names defined before this statement, the statement)
    replay: list[tuple[list[Learned], ast.stmt]] = field(default_factory=list)
    learned: list[Learned] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    random_columns: dict[str, str] = field(default_factory=dict)  # column -> "cell i line j"
    stale_columns: dict[str, str] = field(default_factory=dict)  # column -> the bug, in words
    lifted_cells: set[int] = field(default_factory=set)


class Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.names:
            return ast.copy_location(ast.Name(self.names[node.id], node.ctx), node)
        return node


def kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _const_name(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_").upper() or "VALUE"


class Lift(ast.NodeTransformer):
    """Replace statistics of the frame and random draws with learned names."""

    def __init__(self, rewrite: Rewrite, statement: Statement, column: str | None) -> None:
        self.rewrite, self.statement, self.column = rewrite, statement, column
        self.new: list[Learned] = []

    def _learn(self, stem: str, expr: ast.expr) -> ast.Name:
        taken = {item.name for item in self.rewrite.learned}
        name, n = _const_name(stem), 2
        while name in taken:
            name, n = f"{_const_name(stem)}_{n}", n + 1
        item = Learned(name, ast.unparse(expr), self.statement.cell.index, self.statement.line)
        self.rewrite.learned.append(item)
        self.new.append(item)
        return ast.Name(name, ast.Load())

    def _is_stat(self, node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in STATS
            and root(node) == FRAME
            and kw(node, "axis") is None
        )

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        if self._is_stat(node.value) and node.value.func.attr == "mode":  # .mode()[0]
            return self._learn(f"{column_of(node) or 'frame'}_mode", node)
        return self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        if node.attr in ("values", "to_numpy") and self._random(node.value):
            return self.visit(node.value)
        return self.generic_visit(node)

    def _random(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            return False
        if node.func.attr == "sample" and root(node) == FRAME:
            return True
        text = ast.unparse(node.func)
        return node.func.attr in RANDOM and ".random." in f".{text}"

    def visit_Call(self, node: ast.Call) -> ast.expr:
        func = ast.unparse(node.func)
        # np.isnan on a column: a column of nulls comes as objects, which isna() also takes
        if (
            func in ("np.isnan", "numpy.isnan")
            and len(node.args) == 1
            and root(node.args[0]) == FRAME
        ):
            isna = ast.Attribute(self.visit(node.args[0]), "isna", ast.Load())
            return ast.Call(isna, [], [])
        if self._is_stat(node):
            return self._learn(f"{column_of(node) or 'frame'}_{node.func.attr}", node)
        if self._random(node):
            return self._center(node)
        return self.generic_visit(node)

    def _center(self, node: ast.Call) -> ast.expr:
        kind = node.func.attr
        args = list(node.args)
        if kind == "sample":
            center, words = ast.Call(ast.Attribute(node.func.value, "mean"), [], []), "mean"
        elif kind == "normal":
            center, words = args[0] if args else kw(node, "loc") or ast.Constant(0.0), "mean"
        else:
            low = args[0] if args else kw(node, "low")
            high = args[1] if len(args) > 1 else kw(node, "high")
            if low is None or high is None:
                raise self._cannot("draws at random without a range to take the center of")
            center = ast.BinOp(ast.BinOp(low, ast.Add(), high), ast.Div(), ast.Constant(2))
            words = "center of the random range"
        column = self.column or column_of(node) or "value"
        name = self._learn(f"{column}_fill", center)
        where = f"cell {self.statement.cell.index} line {self.statement.line}"
        self.rewrite.random_columns[column] = where
        cell = self.statement.cell
        self.rewrite.notes.append(
            Note(
                "deliberate",
                cell.index,
                cell.id,
                self.statement.line,
                f"random imputation of `{column}` became the learned {words} `{name.id}` "
                "(deterministic and row-independent, as the service needs)",
            )
        )
        return name

    def _cannot(self, why: str) -> SuggestError:
        s = self.statement
        return SuggestError(
            f"{s.cell.where}, line {s.line} {why}; nb2prod suggest cannot "
            "turn it into code for one frame.",
            cell_index=s.cell.index,
            cell_id=s.cell.id,
            line=s.line,
        )
