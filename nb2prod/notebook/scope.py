"""Cell-level name analysis: what a cell defines, reads, imports; IPython lines set aside."""

from __future__ import annotations

import ast
import re
import symtable

from nb2prod.notebook.read import Cell

_MAGIC = re.compile(r"^\s*(%|!|\?)|^\s*[\w.]+\s*=\s*[%!]|^\s*[\w.]+\?{1,2}\s*$")


def strip_magics(source: str) -> tuple[str, list[tuple[int, str]]]:
    """Blank out IPython magic and shell lines, keeping line numbers; return what was cut."""
    lines, found = source.split("\n"), []
    for i, line in enumerate(lines):
        if _MAGIC.search(line) and not line.lstrip().startswith("#"):
            found.append((i + 1, line.strip()))
            lines[i] = ""
    return "\n".join(lines), found


class ParsedCell:
    """One cell parsed: its tree, top-level names, free names and imports."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        text, self.magics = strip_magics(cell.source)
        self.syntax_error: SyntaxError | None = None
        self.too_deep = False  # Python itself cannot compile it: the kernel would fail too
        self.tree: ast.Module | None = None
        self.defined: set[str] = set()
        self.free: set[str] = set()
        self.imports: dict[str, tuple[ast.stmt, ast.alias]] = {}
        try:
            tree = ast.parse(text)
            table = symtable.symtable(text, f"cell{cell.index}", "exec")
            defined = {
                s.get_name()
                for s in table.get_symbols()
                if s.is_assigned() or s.is_imported() or s.is_namespace()
            }
            free = free_names(table)
        except SyntaxError as exc:
            self.syntax_error = exc
            return
        except ValueError as exc:  # early 3.11: "source code string cannot contain null bytes"
            self.syntax_error = SyntaxError(str(exc))
            return
        except (RecursionError, MemoryError):  # a 100,000-term expression, 1,000 nested defs
            self.too_deep = True
            return
        self.tree, self.defined, self.free = tree, defined, free
        for node in top_level(self.tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    self.imports[bound] = (node, alias)

    def first_use(self, name: str) -> int | None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id == name:
                return node.lineno
        return None


def top_level(tree: ast.Module) -> list[ast.stmt]:
    """Module statements, looking inside module-level if/try blocks."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop(0)
        out.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            todo[:0] = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                todo[:0] = handler.body
    return out


def free_names(table: symtable.SymbolTable) -> set[str]:
    """Names a cell reads from the module namespace, at any nesting depth."""
    names = set()
    for sym in table.get_symbols():
        if table.get_type() == "module":
            if sym.is_referenced():
                names.add(sym.get_name())
        elif sym.is_global() and sym.is_referenced():
            names.add(sym.get_name())
    for child in table.get_children():
        names |= free_names(child)
    return names


def import_source(node: ast.stmt, aliases: list[ast.alias]) -> str:
    if isinstance(node, ast.Import):
        return ast.unparse(ast.Import(names=aliases))
    return ast.unparse(ast.ImportFrom(module=node.module, names=aliases, level=node.level))


def is_schema_class(node: ast.ClassDef, known: set[str]) -> bool:
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if name in ("DataFrameModel", "SchemaModel") or name in known:
            return True
    return False


def frame_schema(annotation: ast.expr | None) -> str | None:
    """``DataFrame[Raw]`` -> ``Raw``; anything else -> None."""
    if isinstance(annotation, ast.Subscript):
        head = annotation.value
        head_name = head.attr if isinstance(head, ast.Attribute) else getattr(head, "id", "")
        if head_name == "DataFrame" and isinstance(annotation.slice, ast.Name):
            return annotation.slice.id
    return None
