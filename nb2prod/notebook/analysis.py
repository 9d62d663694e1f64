"""Static checks of a tagged notebook (``ast`` and ``symtable`` only, no kernel)."""

from __future__ import annotations

import ast
import builtins
from dataclasses import asdict, dataclass, field
from typing import Any

from nb2prod.notebook.bindings import BindingChecks
from nb2prod.notebook.entrypoint import EntrypointChecks
from nb2prod.notebook.read import LIFTED_ROLES, Cell, Notebook, role_label, role_tag
from nb2prod.notebook.scope import ParsedCell, import_source, is_schema_class

SEVERITIES = ("error", "warning", "info")
_IMPLICIT = set(dir(builtins)) | {"__name__", "__file__", "__doc__", "__builtins__", "display"}


@dataclass(frozen=True)
class Finding:
    """One problem found in a notebook, tied to a cell and line where it has one."""

    code: str
    severity: str
    message: str
    cell_index: int | None = None
    cell_id: str | None = None
    line: int | None = None
    name: str | None = None
    role: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Import:
    """An import that lifted code needs, found in some cell, cut down to the needed names."""

    cell: Cell
    source: str


@dataclass
class LiftPlan:
    """What gets lifted: cells, the imports and parameters they need, and the schemas."""

    schema_cells: list[Cell]
    feature_cells: list[Cell]
    schema_imports: list[Import]
    feature_imports: list[Import]
    schema_params: list[str]
    feature_params: list[str]
    from_schema: list[str]  # schema names that features.py imports
    schema_classes: list[str]
    entrypoint: str | None
    input_schema: str | None
    output_schema: str | None
    parameters: list[str] = field(default_factory=list)  # every name the parameters cell sets
    schema_learned: list[str] = field(default_factory=list)  # nb2prod.learned names they use
    feature_learned: list[str] = field(default_factory=list)
    # {"X", "y", "required"}: the evaluation data the export cell writes; None: none
    evaluation: dict[str, Any] | None = None

    @property
    def lifted_params(self) -> list[str]:
        return sorted(set(self.schema_params) | set(self.feature_params))

    @property
    def lifted_learned(self) -> list[str]:
        return sorted(set(self.schema_learned) | set(self.feature_learned))


@dataclass
class CheckResult:
    """The findings for one notebook, plus the pipeline and the lift plan they imply."""

    notebook: Notebook
    findings: list[Finding]
    plan: LiftPlan

    def add(self, findings: list[Finding]) -> None:
        """Merge findings of checks run elsewhere, keeping the order: errors first, by cell."""
        order = {s: i for i, s in enumerate(SEVERITIES)}
        self.findings = sorted(
            [*self.findings, *findings],
            key=lambda f: (order[f.severity], f.cell_index or -1, f.line or 0),
        )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self.notebook.settings)
        settings["learned"] = list(settings["learned"])  # as JSON has it
        return {
            "notebook": str(self.notebook.path),
            "ok": self.ok,
            "counts": {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES},
            "findings": [f.to_dict() for f in self.findings],
            "pipeline": [
                {"role": c.role, "cell_index": c.index, "cell_id": c.id}
                for c in self.notebook.cells
                if c.role
            ],
            "settings": settings,
        }


class _Checker(EntrypointChecks, BindingChecks):
    def __init__(self, nb: Notebook) -> None:
        self.nb = nb
        self.name = nb.path.name
        self.findings: list[Finding] = []
        self.parsed = {c.index: ParsedCell(c) for c in nb.cells}
        self.star_imports = False

    def add(self, code: str, severity: str, text: str, cell: Cell | None = None, **kw: Any):
        where = f"{self.name}: {cell.where}" if cell else self.name
        if cell and kw.get("line"):
            where += f" line {kw['line']}"
        self.findings.append(
            Finding(
                code,
                severity,
                f"{where}: {text}",
                cell_index=cell.index if cell else None,
                cell_id=cell.id if cell else None,
                role=role_label(cell.role) if cell else None,
                **kw,
            )
        )

    def ids(self) -> None:
        """Ids that break nbformat's pattern never reach generated code: each is an error."""
        fix = (
            "delete that id from the .ipynb file and open and save the notebook in JupyterLab "
            "(nbformat's normalization gives the cell a new id)"
        )
        for cell in self.nb.cells:
            if cell.bad_id is not None:
                self.add(
                    "bad-cell-id",
                    "error",
                    f"has an invalid cell id {cell.bad_id} (ids are 1 to 64 letters, digits, "
                    f"'-' or '_'); {fix}.",
                    cell,
                )
            elif cell.same_id_as is not None:
                self.add(
                    "bad-cell-id",
                    "error",
                    f"has the same id as cell {cell.same_id_as}; open and save the notebook in "
                    "JupyterLab (nbformat's normalization gives it a new id).",
                    cell,
                )

    def roles(self) -> None:
        for cell in self.nb.cells:
            for written, guess in cell.unknown_roles:
                hint = f"; did you mean {role_tag(guess)}?" if guess else "."
                known = ", ".join(role_tag(r) for r in ("schema", "features", "train"))
                self.add(
                    "unknown-role",
                    "error",
                    f"unknown role nb2prod:{written}{hint}" + ("" if guess else f" (e.g. {known})"),
                    cell,
                    name=written,
                    line=cell.role_line or None,
                )
            if cell.conflicting_roles:
                both = ", ".join(role_tag(r) for r in (cell.role, *cell.conflicting_roles))
                self.add(
                    "conflicting-roles",
                    "error",
                    f"has more than one role ({both}); give each cell one role.",
                    cell,
                )
        if not self.nb.with_role("parameters"):
            self.add(
                "no-parameters",
                "info",
                "has no parameters cell, so the build takes no -p values.",
            )
        if not self.nb.with_role("train"):
            self.add(
                "no-train",
                "error",
                f"has no nb2prod:train cell; tag the cell that fits `{self.nb.settings.model}`.",
            )

    def too_deep(self) -> None:
        for cell in self.nb.cells:
            if self.parsed[cell.index].too_deep and cell.role != "skip":
                lifted = cell.role in LIFTED_ROLES
                self.add(
                    "too-complex",
                    "error" if lifted else "warning",
                    "is too long or too deeply nested for Python to compile (RecursionError), "
                    "so it cannot run; split it into smaller statements.",
                    cell,
                )

    def lifted_syntax(self) -> None:
        for cell in self.nb.lifted:
            parsed = self.parsed[cell.index]
            for line, text in parsed.magics:
                self.add(
                    "magic",
                    "error",
                    f"has IPython magic or shell escape `{text}`, which cannot run in a service; "
                    "move it to an untagged cell.",
                    cell,
                    line=line,
                )
            if parsed.syntax_error:
                err = parsed.syntax_error
                self.add(
                    "syntax", "error", f"has a syntax error: {err.msg}.", cell, line=err.lineno
                )
                continue
            for node in ast.walk(parsed.tree) if parsed.tree else []:
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    self.star_imports = True
                    self.add(
                        "star-import",
                        "error",
                        f"uses `from {node.module} import *`; import the names it needs.",
                        cell,
                        line=node.lineno,
                        name="*",
                    )

    def resolve(self, cells: list[Cell], provided: set[str], params: set[str]):
        """Free names of ``cells``: lifted imports, parameters and learned names, and findings."""
        imports: dict[int, tuple[Cell, ast.stmt, list[ast.alias]]] = {}
        used_params: list[str] = []
        used_learned: list[str] = []
        learned = set(self.nb.settings.learned)
        for cell in cells:
            parsed = self.parsed[cell.index]
            if parsed.tree is None:
                continue
            for name in sorted(parsed.free - provided - _IMPLICIT):
                source = self._import_for(name)
                if source:
                    src_cell, node, alias = source
                    entry = imports.setdefault(id(node), (src_cell, node, []))
                    if alias not in entry[2]:
                        entry[2].append(alias)
                elif name in params:
                    if name not in used_params:
                        used_params.append(name)
                elif name in learned:
                    if name not in used_learned:
                        used_learned.append(name)
                elif not self.star_imports:
                    # after a star import, any name may come from it: the star is the finding
                    self._undefined(cell, name)
        lifted = [
            Import(c, import_source(n, aliases))
            for c, n, aliases in sorted(imports.values(), key=lambda e: e[0].index)
        ]
        return lifted, used_params, used_learned

    def _import_for(self, name: str):
        for cell in self.nb.cells:
            if cell.role == "skip":
                continue
            hit = self.parsed[cell.index].imports.get(name)
            if hit:
                return cell, hit[0], hit[1]
        return None

    def _undefined(self, cell: Cell, name: str) -> None:
        line = self.parsed[cell.index].first_use(name)
        definers = [c for c in self.nb.cells if name in self.parsed[c.index].defined]
        if definers:
            d = definers[0]
            only = "only " if len(definers) == 1 else ""
            text = (
                f"uses `{name}`, which {only}{d.where} defines; tag that cell "
                f"{role_tag(cell.role)}, compute it inside the function, or list it in "
                "nb2prod.learned to lift its value from the training run."
            )
        else:
            text = f"uses `{name}`, which no cell, import, parameter or builtin provides."
        self.add("undefined-name", "error", text, cell, line=line, name=name)

    def evaluation(self) -> dict[str, Any] | None:
        """The ``evaluation`` setting resolved: the default when X_test and y_test are
        bound (or may be, out of sight), the names set, or None."""
        setting = self.nb.settings.evaluation
        if setting == {}:
            return None
        names = setting or {"X": "X_test", "y": "y_test"}
        missing = [n for n in names.values() if n not in self.bound]
        if setting is None:
            return None if missing and not self.opaque else {**names, "required": False}
        if missing and not self.opaque:
            self.add(
                "missing-evaluation",
                "error",
                f"notebook setting nb2prod.evaluation names `{missing[0]}`, which no cell "
                "assigns; assign the held-out rows and outcomes, or set "
                "nb2prod.evaluation to the names your notebook uses.",
                name="nb2prod.evaluation",
            )
        return {**names, "required": True}

    def run(self) -> CheckResult:
        self.ids()
        self.roles()
        self.too_deep()
        self.lifted_syntax()
        self.binding_checks()
        nb = self.nb
        schema_cells, feature_cells = nb.with_role("schema"), nb.with_role("features")
        params: set[str] = set()
        for cell in nb.with_role("parameters"):
            params |= self.parsed[cell.index].defined
        schema_defined = set().union(*(self.parsed[c.index].defined for c in schema_cells))
        feature_defined = set().union(*(self.parsed[c.index].defined for c in feature_cells))
        schema_imports, schema_params, schema_learned = self.resolve(
            schema_cells, schema_defined, params
        )
        # names the schema cells only import are imported again by features.py, not via schema
        schema_own = schema_defined - set().union(
            *(self.parsed[c.index].imports.keys() for c in schema_cells)
        )
        feature_imports, feature_params, feature_learned = self.resolve(
            feature_cells, feature_defined | schema_own, params
        )
        features_free = set().union(*(self.parsed[c.index].free for c in feature_cells))
        classes: list[str] = []
        for cell in schema_cells:
            tree = self.parsed[cell.index].tree
            for node in tree.body if tree else []:
                if isinstance(node, ast.ClassDef) and is_schema_class(node, set(classes)):
                    classes.append(node.name)
        entry, in_schema, out_schema = self.entrypoint(set(classes))
        from_schema = sorted((features_free - feature_defined) & schema_own)
        if entry is None and in_schema and in_schema not in from_schema:
            from_schema.append(in_schema)
        plan = LiftPlan(
            schema_cells=schema_cells,
            feature_cells=feature_cells,
            schema_imports=schema_imports,
            feature_imports=feature_imports,
            schema_params=schema_params,
            feature_params=feature_params,
            from_schema=from_schema,
            schema_classes=classes,
            entrypoint=entry,
            input_schema=in_schema,
            output_schema=out_schema,
            parameters=sorted(params),
            schema_learned=schema_learned,
            feature_learned=feature_learned,
            evaluation=self.evaluation(),
        )
        result = CheckResult(nb, [], plan)
        result.add(self.findings)
        return result


def analyze(nb: Notebook) -> CheckResult:
    """Run every static check on an already-read notebook."""
    return _Checker(nb).run()
