"""Where the notebook binds the names the build reads, and which packages its cells import."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nb2prod.notebook.read import Cell, Notebook
    from nb2prod.notebook.scope import ParsedCell

# What the build does with each configured name, for the messages.
_WHAT = {
    "model": "the fitted model the build saves",
    "reference": "the raw training inputs (a DataFrame) the build ships as reference data",
    "metrics": "the dict of metrics the build reads",
}
# Import names whose distribution on PyPI has another name.
_DIST = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
}
# Magics and calls that bind names or install packages out of sight of ``ast``.
_OPAQUE_MAGICS = ("%run", "%store", "%load", "%autoreload", "%%capture")
_OPAQUE_CALLS = {"exec", "eval", "globals", "vars", "setattr", "locals"}
_MAGIC_ASSIGN = re.compile(r"^[\w.]+\s*=\s*[%!]")
_INSTALLS = ("pip install", "conda install", "mamba install", "uv pip install")
_NUMPY_CALLS = {"array", "asarray", "asanyarray", "vstack", "hstack", "column_stack", "stack"}
_NUMPY_METHODS = {"astype", "reshape", "copy", "squeeze"}  # an array stays an array
_ERRORS_CAUGHT = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass(frozen=True)
class Binding:
    """One module-level binding of a name: an import, an assignment or a def/class."""

    cell: Cell
    line: int
    col: int
    kind: str  # "import", "assign" or "def"
    node: ast.AST  # the import statement, the assigned value, or the def
    position: int | None = None  # the name's place in a tuple target (``a, b = ...``)

    @property
    def order(self) -> tuple[int, int, int]:
        return self.cell.index, self.line, self.col


def _module_scope(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node that runs in the cell's module scope: not into def, class or lambda bodies."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.comprehension):  # its target is the comprehension's own
            todo += [node.iter, *node.ifs]
            continue
        todo += list(ast.iter_child_nodes(node))


def cell_bindings(cell: Cell, tree: ast.Module) -> list[tuple[str, Binding]]:
    """The module-level names ``tree`` binds, each with where and how."""
    values: dict[int, tuple[ast.expr, int | None]] = {}
    silent: set[int] = set()  # ``x: int`` with no value binds nothing
    out: list[tuple[str, Binding]] = []

    def add(name: str, node: ast.AST, kind: str, value: ast.AST, position=None) -> None:
        out.append((name, Binding(cell, node.lineno, node.col_offset, kind, value, position)))

    nodes = list(_module_scope(tree))
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[id(target)] = (node.value, None)
                elif isinstance(target, (ast.Tuple, ast.List)):
                    starred = any(isinstance(e, ast.Starred) for e in target.elts)
                    for i, elt in enumerate(target.elts):
                        values[id(elt)] = (node.value, None if starred else i)
        elif isinstance(node, ast.AnnAssign) and node.value is None:
            silent.add(id(node.target))
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    add(alias.asname or alias.name.split(".")[0], node, "import", node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            add(node.name, node, "def", node)
            if not isinstance(node, ast.ClassDef):
                for name, inner in _global_writes(node):
                    add(name, inner, "assign", inner)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            if id(node) not in silent:
                value, position = values.get(id(node), (node, None))
                add(node.id, node, "assign", value, position)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            add(node.name, node, "assign", node)
    return out


def _global_writes(fn: ast.AST) -> list[tuple[str, ast.AST]]:
    """Names a function declares ``global`` and assigns: calling it binds them."""
    declared = {n for node in ast.walk(fn) if isinstance(node, ast.Global) for n in node.names}
    return [
        (node.id, node)
        for node in ast.walk(fn)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in declared
    ]


def _numpy_names(parsed: dict[int, ParsedCell]) -> set[str]:
    names = set()
    for p in parsed.values():
        for bound, (node, alias) in p.imports.items():
            if isinstance(node, ast.Import) and alias.name == "numpy":
                names.add(bound)
    return names or {"np", "numpy"}


def _is_array(expr: ast.AST, numpy: set[str]) -> bool:
    """``expr`` visibly makes a numpy array: ``.values``, ``.to_numpy()``, ``np.array(...)``."""
    if isinstance(expr, ast.Attribute):
        return expr.attr == "values"
    if not isinstance(expr, ast.Call) or not isinstance(expr.func, ast.Attribute):
        return False
    func = expr.func
    if func.attr == "to_numpy":
        return True
    if func.attr in _NUMPY_METHODS:
        return _is_array(func.value, numpy)
    return func.attr in _NUMPY_CALLS and isinstance(func.value, ast.Name) and func.value.id in numpy


def _is_split(expr: ast.AST) -> bool:
    func = getattr(expr, "func", None)
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return isinstance(expr, ast.Call) and name == "train_test_split"


class BindingChecks:
    """Mixed into the analysis checker, which supplies the notebook, parsed cells and ``add``."""

    nb: Notebook
    parsed: dict[int, ParsedCell]
    add: Callable[..., None]

    def binding_checks(self) -> None:
        running = [c for c in self.nb.cells if c.role != "skip"]
        self.bound: dict[str, list[Binding]] = {}
        for cell in running:
            tree = self.parsed[cell.index].tree
            for name, binding in cell_bindings(cell, tree) if tree else []:
                self.bound.setdefault(name, []).append(binding)
        for found in self.bound.values():
            found.sort(key=lambda b: b.order)
        self.opaque = any(self._opaque(c) for c in running)
        if not self.opaque:
            self._settings_names()
            self._learned()
        self._packages(running)

    def _opaque(self, cell: Cell) -> bool:
        """The cell may bind names ``ast`` cannot see: a syntax error, ``%run``, ``exec``."""
        parsed = self.parsed[cell.index]
        if parsed.tree is None:
            return True
        if any(t.startswith(_OPAQUE_MAGICS) or _MAGIC_ASSIGN.match(t) for _, t in parsed.magics):
            return True  # ``%run``, or ``X_train = %sql ...``: bound where ast cannot see
        for node in _module_scope(parsed.tree):
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                return True
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in _OPAQUE_CALLS:
                return True
        return False

    def _settings_names(self) -> None:
        settings = self.nb.settings
        train = self.nb.with_role("train")
        at = train[0] if train else None
        wanted = [("model", settings.model), ("reference", settings.reference)]
        if settings.gates:
            wanted.append(("metrics", settings.metrics))
        if not train:  # not a pipeline yet: ``no-train`` is the finding
            wanted = []
        for key, name in wanted:
            if name not in self.bound:
                where = (self.nb.with_role("evaluate") or [at])[0] if key == "metrics" else at
                self._missing(key, name, where)
        for key in ("model", "reference", "metrics"):
            name = getattr(settings, key)
            last = self.bound.get(name, [None])[-1]
            if last is not None and last.kind == "import" and _binds_module(last.node, name):
                self._shadowed(key, name, last)
        last = self.bound.get(settings.reference, [None])[-1]
        if last is not None and last.kind == "assign":
            self._reference_array(settings.reference, last)

    def _missing(self, key: str, name: str, cell: Cell | None) -> None:
        do = {
            "model": f"assign the fitted model to it in the nb2prod:train cell (`{name} = ...fit(...)`)",
            "reference": f"assign the raw input DataFrame the model trains on to it (`{name} = ...`)",
            "metrics": f'assign a dict of metric name to number to it (`{name} = {{"accuracy": ...}}`)',
        }[key]
        because = ", and the gates (nb2prod.gates) need it" if key == "metrics" else ""
        self.add(
            "missing-assignment",
            "error",
            f"no cell assigns `{name}`, {_WHAT[key]}{because}; {do}, or set nb2prod.{key} to "
            "the name your notebook uses.",
            cell,
            name=name,
        )

    def _shadowed(self, key: str, name: str, binding: Binding) -> None:
        stmt = binding.node
        alias = next(a for a in stmt.names if (a.asname or a.name.split(".")[0]) == name)
        if isinstance(stmt, ast.ImportFrom):
            what = f"{stmt.module}.{alias.name}" if stmt.module else alias.name
            rename = f"from {stmt.module} import {alias.name} as {what.split('.')[0]}_{name}"
        else:
            what = alias.name
            rename = f"import {alias.name} as {name}_module"
        self.add(
            "import-shadows-setting",
            "error",
            f"`{name}` is `{what}` from the import `{ast.unparse(stmt)}`, and no later cell "
            f"assigns it, so it is not {_WHAT[key]}; rename the import (`{rename}`) or set "
            f"nb2prod.{key}.",
            binding.cell,
            line=binding.line,
            name=name,
        )

    def _reference_array(self, name: str, binding: Binding) -> None:
        numpy = _numpy_names(self.parsed)
        value, source = binding.node, binding
        if binding.position is None and not _is_array(value, numpy):
            return
        if binding.position is not None:
            if not _is_split(value) or binding.position // 2 >= len(value.args):
                return
            arg = value.args[binding.position // 2]
            if isinstance(arg, ast.Name):  # follow one level: ``X = df.values`` before the split
                arg_name = arg.id
                earlier = [b for b in self.bound.get(arg.id, []) if b.order < binding.order]
                if not earlier or earlier[-1].kind != "assign" or earlier[-1].position is not None:
                    return
                source = earlier[-1]
                arg = source.node
            if not _is_array(arg, numpy):
                return
        if source is binding:
            made = f"`{ast.unparse(source.node)}` makes one"
        else:
            made = (
                f"train_test_split over `{arg_name}`, and `{arg_name} = "
                f"{ast.unparse(source.node)}` in {source.cell.where} line {source.line} is one"
            )
        self.add(
            "reference-not-frame",
            "error",
            f"`{name}` is a numpy array here ({made}), but nb2prod needs the raw input "
            "DataFrame as nb2prod.reference (its columns are the service's inputs); keep it a "
            "DataFrame, without `.values` or `.to_numpy()` (`X = df.drop(columns=[...])` "
            "keeps the columns).",
            binding.cell,
            line=binding.line,
            name=name,
        )

    def _learned(self) -> None:
        for name in self.nb.settings.learned:
            computed = [
                b for b in self.bound.get(name, []) if b.cell.role not in ("schema", "features")
            ]
            if computed:
                continue
            users = [c for c in self.nb.lifted if name in self.parsed[c.index].free]
            self.add(
                "learned-unassigned",
                "error",
                f"uses `{name}`, listed in nb2prod.learned, but no untagged or nb2prod:train "
                "cell assigns it; compute it from the training data in such a cell, or "
                "remove it from nb2prod.learned."
                if users
                else f"lists `{name}` in nb2prod.learned, but no untagged or nb2prod:train "
                "cell assigns it; compute it from the training data, or remove it from the list.",
                users[0] if users else None,
                line=self.parsed[users[0].index].first_use(name) if users else None,
                name=name,
            )

    def _packages(self, running: list[Cell]) -> None:
        for cell in running:
            if any(i in t for _, t in self.parsed[cell.index].magics for i in _INSTALLS):
                return  # the notebook installs what it needs itself
            if "sys.path" in cell.source or "addsitedir" in cell.source:
                return  # it imports from folders of its own choosing
        folder = [str(self.nb.path.parent.resolve())]
        seen: set[str] = set()
        for cell in running:
            tree = self.parsed[cell.index].tree
            for node, top in _imported(tree) if tree else []:
                if top in seen:
                    continue
                seen.add(top)
                if _installed(top, folder):
                    continue
                skip = " or tag the cell nb2prod:skip if it only explores," if not cell.role else ""
                self.add(
                    "package-missing",
                    "error",
                    f"imports `{top}`, which is not installed in this environment "
                    f"({sys.executable}), so training would fail with ModuleNotFoundError; "
                    f"install it (`pip install {_DIST.get(top, top)}`),{skip} or remove the "
                    "import.",
                    cell,
                    line=node.lineno,
                    name=top,
                )


def _imported(tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    """Top-level modules the cell imports when it runs, outside ``try: ... except ImportError``."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Import):
            out += [(node, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module != "__future__":
                out.append((node, node.module.split(".")[0]))
        elif isinstance(node, ast.Try):
            caught = {ast.unparse(h.type) if h.type else "Exception" for h in node.handlers}
            names = {n.strip("() ") for c in caught for n in c.split(",")}
            if not names & _ERRORS_CAUGHT:
                todo[:0] = node.body
            todo[:0] = [*node.orelse, *node.finalbody]
        elif isinstance(node, (ast.If, ast.For, ast.While, ast.With)):
            todo[:0] = [*node.body, *getattr(node, "orelse", [])]
    return out


def _binds_module(stmt: ast.stmt, name: str) -> bool:
    """The import binds ``name`` to a module: ``import x as name``, or ``from pkg import name``
    where ``pkg/name`` is a module on disk (found without importing anything)."""
    if isinstance(stmt, ast.Import):
        return True
    if stmt.level or not stmt.module:
        return False
    alias = next(a for a in stmt.names if (a.asname or a.name) == name)
    parts = [*stmt.module.split("."), alias.name]
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            where = spec.submodule_search_locations if spec else None
            if not where:
                return False
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), where)
    except (ImportError, ValueError, AttributeError):
        return False
    return spec is not None


def _installed(top: str, folder: list[str]) -> bool:
    """``top`` can be imported: installed here or a module next to the notebook (not imported)."""
    if top in sys.builtin_module_names or top in sys.modules:
        return True
    try:
        if importlib.util.find_spec(top) is not None:
            return True
        return importlib.machinery.PathFinder.find_spec(top, folder) is not None
    except (ImportError, ValueError, AttributeError):
        return True  # a broken finder is no proof it is missing
