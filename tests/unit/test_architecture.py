"""The shape of the package that docs/architecture.md promises, checked rather than hoped for."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "nb2prod"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)
MAX_LINES = 420  # "about 400": the style guide's budget


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """nb2prod modules that ``path`` imports when it is imported: module-level statements,
    outside ``if TYPE_CHECKING:`` (function-level imports run later, and cannot loop)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nb2prod")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nb2prod"):
            for alias in node.names:  # `from nb2prod.builder import cache` imports a module
                candidate = f"{node.module}.{alias.name}"
                known = {module_name(m) for m in MODULES}
                found.add(candidate if candidate in known else node.module)
    return found


def graph() -> dict[str, set[str]]:
    """What each module needs executed before it can run.

    An import needs its target, and the packages above the target, except those above the
    importer itself: Python has those in ``sys.modules`` already, while they run. A name taken
    from such a package (``from nb2prod import __version__``) still needs it: an edge.
    """
    edges = {}
    for path in MODULES:
        name = module_name(path)
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        deps = set()
        for target in top_level_imports(path):
            parts = target.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts))} - own
            deps.add(target)
        deps.discard(name)
        edges[name] = deps
    return edges


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                cycle = path[path.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_runtime_modules_import_nothing_of_nb2prod() -> None:
    # they are copied into every bento, where nb2prod is not installed
    for path in sorted((PACKAGE / "serving").glob("*.py")):
        if path.name != "__init__.py":
            tree = ast.parse(path.read_text())
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            assert not [n for n in names if n.startswith("nb2prod")], path.name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_within_the_budget(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_no_module_is_shadowed_by_a_name_its_package_exports() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        bound = {
            a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
        }
        bound |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        submodules = {p.stem for p in init.parent.glob("*.py")} | {
            p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file()
        }
        assert not bound & submodules, f"{init.relative_to(ROOT)} shadows {bound & submodules}"


def test_importing_the_builder_leaves_the_build_function_in_place() -> None:
    code = (
        "import nb2prod.builder, nb2prod.builder.pipeline, nb2prod.notebook.check, nb2prod; "
        "assert nb2prod.build is nb2prod.builder.pipeline.build, nb2prod.build; "
        "assert nb2prod.check is nb2prod.notebook.check.check, nb2prod.check; "
        "assert callable(nb2prod.train)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_package_root_only_re_exports() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    kinds = {type(n).__name__ for n in tree.body}
    # imports, __all__, the docstring, the lazy re-export (PEP 562 ``__getattr__``), and the
    # hooks Jupyter looks up on the package itself
    assert kinds <= {"ImportFrom", "Import", "Assign", "Expr", "If", "FunctionDef"}
    hooks = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} - {"__getattr__"}
    assert hooks == {
        "_jupyter_labextension_paths",
        "_jupyter_server_extension_points",
        "_load_jupyter_server_extension",
    }


def test_importing_nb2prod_imports_nothing_heavy() -> None:
    code = (
        "import sys, nb2prod, nb2prod.cli, nb2prod.lab.routes; "
        "heavy = {'pandas', 'numpy', 'bentoml', 'papermill', 'evidently', 'hypothesis', "
        "'pandera', 'sklearn', 'pytest', 'nbformat', 'mlflow'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def documented_order() -> list[str]:
    """The modules in the order docs/architecture.md's "Which way imports run" lists them."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Which way imports run", 1)[1].split("\n## ", 1)[0]
    listed = " ".join(re.findall(r"^(?:\d+\.| {3}).*$", section, flags=re.MULTILINE))
    order = []
    for name in re.findall(r"`([a-z_.*/]+)`", listed):
        name = name.replace("/", ".")
        if name.endswith(".*"):
            folder = PACKAGE / name[:-2]
            order += sorted(module_name(p) for p in folder.glob("*.py") if p.name != "__init__.py")
        else:
            order.append(f"nb2prod.{name}")
    return order


def test_imports_run_the_way_the_architecture_page_says() -> None:
    order = documented_order()
    rank: dict[str, int] = {}
    for i, name in enumerate(order):
        rank.setdefault(name, i)  # where it is first listed
    modules = {module_name(p) for p in MODULES if p.name != "__init__.py"}
    assert modules == set(rank), f"on the page or not: {sorted(modules ^ set(rank))}"
    for name, deps in graph().items():
        for dep in deps & set(rank):
            if name in rank:
                assert rank[dep] < rank[name], f"{name} imports {dep}, listed below it"
