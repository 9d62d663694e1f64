"""Foreign tags: Kale cell tags and nbdev directives, found and read as nb2prod roles (no I/O)."""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass

from nb2prod.notebook.analysis import Finding
from nb2prod.notebook.read import Cell, Notebook, role_label, role_tag
from nb2prod.notebook.scope import ParsedCell

DIALECTS = ("kale", "nbdev")
TOOLS = {"kale": "Kale", "nbdev": "nbdev"}
KINDS = ("role", "unclear", "untagged", "metadata")  # how a tag reads; a cell's lead comes first
_ROLE_ORDER = ("skip", "parameters", "train", "evaluate", "features")  # Kale: skip always wins

_KALE_WORDS = ("skip", "imports", "functions", "pipeline-parameters", "pipeline-metrics")
_KALE_STEP = re.compile(r"^(?:step|block):(?P<name>.*)$")  # `block:` is Kale 0.x's `step:`
_KALE_META = re.compile(r"^(?:prev|annotation|label|limit|image|cache):")
# nbdev 2 (`#| export`, `#|export`) and nbdev 1 (`#export`, `# export core`) directives
_NBDEV = re.compile(
    r"^#(?:\|\s*|\s*)(?P<word>exports?|exporti|hide|default_exp)(?:\s+(?P<arg>[\w.]+))?\s*$"
)


@dataclass(frozen=True)
class ForeignTag:
    """One Kale tag or nbdev directive on a code cell, as written."""

    cell_index: int
    cell_id: str
    dialect: str  # "kale" or "nbdev"
    written: str  # "pipeline-parameters", "step:train", "#| export"
    line: int | None = None  # the cell line of an nbdev directive (1 for the first)


@dataclass(frozen=True)
class Reading:
    """What importing one foreign tag does to its cell."""

    tag: ForeignTag
    kind: str  # "role", "untagged" (on purpose), "metadata" (reported), "unclear"
    role: str | None  # the role the import gives the cell, for kind "role"
    reason: str
    setting: tuple[str, str] | None = None  # a notebook setting the role needs: ("model", name)


def _directives(cell: Cell) -> list[tuple[int, str]]:
    """nbdev directives in the cell's leading comment lines: (line, as written)."""
    found = []
    for number, line in enumerate(cell.source.split("\n"), start=1):
        text = line.strip()
        if not text and not found:
            continue
        if not text.startswith("#"):
            break
        if _NBDEV.match(text):
            found.append((number, text))
    return found


def _kale(tag: str) -> bool:
    return tag in _KALE_WORDS or bool(_KALE_STEP.match(tag) or _KALE_META.match(tag))


def detect(nb: Notebook) -> list[ForeignTag]:
    """Every Kale tag (``metadata.tags``) and nbdev directive (first lines), in cell order."""
    found = []
    for cell in nb.cells:
        tags = nb.node["cells"][cell.index]["metadata"].get("tags", [])
        found += [ForeignTag(cell.index, cell.id, "kale", t) for t in tags if _kale(t)]
        found += [ForeignTag(cell.index, cell.id, "nbdev", w, n) for n, w in _directives(cell)]
    return found


def command(nb: Notebook, dialect: str) -> str:
    """The command that imports ``dialect``'s tags of ``nb``."""
    return f"nb2prod tag {shlex.quote(str(nb.path))} --from {dialect}"


class _Reader:
    """Reads every foreign tag of one notebook; needs the whole notebook (parameters, helpers)."""

    def __init__(self, nb: Notebook, dialects: tuple[str, ...]) -> None:
        self.nb, self.settings = nb, nb.settings
        self.raw_settings = nb.node["metadata"].get("nb2prod") or {}
        self.tags = [t for t in detect(nb) if t.dialect in dialects]
        self.cells = {c.index: c for c in nb.cells}
        self._parsed: dict[int, ParsedCell] = {}
        given = nb.with_role("parameters")
        first = next(
            (
                t.cell_index
                for t in self.tags
                if t.written == "pipeline-parameters" and not self.cells[t.cell_index].role
            ),
            None,
        )
        self.parameters_cell = given[0].index if given else first

    def _predicts(self, name: str) -> bool:
        """Some cell predicts with ``name``: an estimator, not a scaler fitted in a step."""
        for cell in self.nb.cells:
            tree = self.parsed(cell.index).tree
            for node in ast.walk(tree) if tree is not None and cell.role != "skip" else ():
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("predict", "predict_proba", "decision_function", "score")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == name
                ):
                    return True
        return False

    def parsed(self, index: int) -> ParsedCell:
        if index not in self._parsed:
            self._parsed[index] = ParsedCell(self.cells[index])
        return self._parsed[index]

    def read(self) -> dict[int, list[Reading]]:
        out: dict[int, list[Reading]] = {}
        for tag in self.tags:
            reading = self._kale(tag) if tag.dialect == "kale" else self._nbdev(tag)
            out.setdefault(tag.cell_index, []).append(reading)
        self._helpers(out)
        return out

    def _kale(self, tag: ForeignTag) -> Reading:
        word = tag.written
        if word == "skip":
            return Reading(tag, "role", "skip", "Kale leaves it out of the pipeline")
        if word in ("imports", "functions"):
            why = "Kale prepends it to every step; nb2prod runs it in training"
            why += (
                " and lifts any import that lifted code uses"
                if word == "imports"
                else " (a function the entry point calls belongs in a nb2prod:features cell)"
            )
            return Reading(tag, "untagged", None, why)
        if word == "pipeline-parameters":
            return self._parameters(tag)
        if word == "pipeline-metrics":
            return self._metrics(tag)
        step = _KALE_STEP.match(word)
        if step:
            return self._step(tag, step["name"])
        if not any(
            _KALE_STEP.match(t.written) for t in self.tags if t.cell_index == tag.cell_index
        ):
            why = "Kale step metadata belongs with a step:<name> tag, and this cell has none"
            return Reading(tag, "unclear", None, why)
        return Reading(
            tag, "metadata", None, "Kale step metadata; nb2prod runs the cells in notebook order"
        )

    def _parameters(self, tag: ForeignTag) -> Reading:
        if self.parameters_cell in (None, tag.cell_index):
            return Reading(
                tag, "role", "parameters", "Kale's pipeline parameters; -p NAME VALUE sets them"
            )
        return Reading(
            tag,
            "unclear",
            None,
            f"a second parameters cell: papermill injects -p values after cell "
            f"{self.parameters_cell} only, so this cell would set its names back; move its "
            f"assignments into cell {self.parameters_cell}",
        )

    def _metrics(self, tag: ForeignTag) -> Reading:
        name = self.settings.metrics
        parsed = self.parsed(tag.cell_index)
        why = "Kale's pipeline metrics"
        if parsed.tree is not None and not _assigns(parsed.tree, name):
            why += (
                f"; nb2prod reads `{name}`, a dict of name to number: make this cell assign "
                f'it, as in `{name} = {{"accuracy": accuracy}}`'
            )
        return Reading(tag, "role", "evaluate", why)

    def _step(self, tag: ForeignTag, step: str) -> Reading:
        parsed = self.parsed(tag.cell_index)
        if parsed.tree is None:
            where = f" (line {parsed.syntax_error.lineno})" if parsed.syntax_error else ""
            return Reading(
                tag,
                "unclear",
                None,
                f"Python cannot parse it{where}, so nb2prod cannot tell what the step does; "
                "tag it yourself",
            )
        if not step:
            return Reading(tag, "untagged", None, "an empty Kale step name, which Kale ignores")
        model, metrics = self.settings.model, self.settings.metrics
        fits, assigns = _fits(parsed.tree, model), _assigns(parsed.tree, metrics)
        if fits and assigns:
            why = (
                f"the step fits `{model}` and computes `{metrics}` in one cell, so "
                "nb2prod:evaluate could not be split off; move the metrics into their own cell "
                "tagged nb2prod:evaluate"
            )
            return Reading(tag, "role", "train", why)
        if fits:
            return Reading(tag, "role", "train", f"the step fits `{model}`")
        other = _fitted(parsed.tree)
        if other and "model" not in self.raw_settings and not assigns and self._predicts(other):
            why = f"the step fits `{other}`; nb2prod.model is set to `{other}`"
            return Reading(tag, "role", "train", why, ("model", other))
        if assigns:
            return Reading(tag, "role", "evaluate", f"the step assigns `{metrics}`")
        does = (
            "loads data" if _loads(parsed.tree) else f"neither fits `{model}` nor sets `{metrics}`"
        )
        return Reading(
            tag,
            "untagged",
            None,
            f"the step {does}: it stays training code that papermill runs "
            "(`nb2prod suggest` lifts feature engineering into a nb2prod:features cell)",
        )

    def _nbdev(self, tag: ForeignTag) -> Reading:
        word = _NBDEV.match(tag.written)["word"]
        if word == "hide":
            why = "nbdev hides it from the docs only; the cell still runs in training"
            return Reading(tag, "untagged", None, why)
        if word == "default_exp":
            return Reading(
                tag, "untagged", None, "it names nbdev's module; nb2prod writes features.py"
            )
        parsed, entry = self.parsed(tag.cell_index), self.settings.entrypoint
        if parsed.tree is not None and entry in _functions(parsed.tree):
            return Reading(tag, "role", "features", f"it defines the entry point `{entry}`")
        own = parsed.defined - set(parsed.imports)
        why = (
            "its imports are lifted wherever they are, when lifted code uses them"
            if parsed.tree is not None and not own
            else f"it does not define the entry point `{entry}` or anything it uses"
        )
        return Reading(tag, "untagged", None, why)

    def _helpers(self, out: dict[int, list[Reading]]) -> None:
        """nbdev exports that the entry point uses (at any depth) go to features.py with it."""
        lifted = {c.index for c in self.nb.with_role("features")}
        lifted |= {i for i, rs in out.items() if any(r.role == "features" for r in rs)}
        while True:
            needed = set().union(*(self.parsed(i).free for i in lifted))
            grew = False
            for index, readings in out.items():
                for n, r in enumerate(readings):
                    if index in lifted or r.kind != "untagged" or r.tag.dialect != "nbdev":
                        continue
                    if not _NBDEV.match(r.tag.written)["word"].startswith("export"):
                        continue
                    parsed = self.parsed(index)
                    uses = sorted((parsed.defined - set(parsed.imports)) & needed)
                    if uses:
                        names = ", ".join(f"`{u}`" for u in uses)
                        why = f"it defines {names}, which the entry point uses"
                        readings[n] = Reading(r.tag, "role", "features", why)
                        lifted.add(index)
                        grew = True
            if not grew:
                return


def _targets(tree: ast.AST) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            found += node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            found.append(node.target)
    out = []
    while found:
        target = found.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            found += target.elts
        elif isinstance(target, ast.Starred):
            found.append(target.value)
        else:
            out.append(target)
    return out


def _assigns(tree: ast.AST, name: str) -> bool:
    """The cell binds ``name`` (or sets one of its items: ``metrics["auc"] = ...``)."""
    for target in _targets(tree):
        if isinstance(target, ast.Subscript):
            target = target.value
        if isinstance(target, ast.Name) and target.id == name:
            return True
    return False


def _fits(tree: ast.AST, model: str) -> bool:
    """``model.fit(...)``, or ``model = ...`` in a cell that calls some ``.fit(...)``."""
    fit_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "fit"
    ]
    on_model = any(
        isinstance(c.func.value, ast.Name) and c.func.value.id == model for c in fit_calls
    )
    return on_model or bool(fit_calls and _assigns(tree, model))


def _fitted(tree: ast.AST) -> str | None:
    """The name a cell fits an estimator into: ``rf.fit(X, y)`` or ``rf = Est().fit(X, y)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            call, target = node.value, node.targets[0]
            if (
                isinstance(target, ast.Name)
                and isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "fit"
            ):
                return target.id
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "fit"
            and isinstance(node.value.func.value, ast.Name)
        ):
            return node.value.func.value.id
    return None


def _loads(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name.startswith(("read_", "load")) or name == "open":
                return True
    return False


def _functions(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def read_tags(nb: Notebook, dialects: tuple[str, ...] = DIALECTS) -> dict[int, list[Reading]]:
    """How each foreign tag of ``dialects`` reads, by cell index (cells without any: absent)."""
    return _Reader(nb, dialects).read()


def lead(readings: list[Reading]) -> Reading:
    """The reading that decides the cell: a role (skip first), else unclear, else the first."""

    def rank(r: Reading) -> tuple[int, int]:
        return KINDS.index(r.kind), _ROLE_ORDER.index(r.role) if r.role else 0

    return min(readings, key=rank)


def findings(nb: Notebook) -> list[Finding]:
    """One ``foreign-tags`` finding per untagged cell whose foreign tags nb2prod does not read.

    Error where the tag changes what runs (a Kale ``skip`` cell would run in training; a Kale
    ``pipeline-parameters`` cell and no parameters cell). Once the notebook carries nb2prod
    roles, tags the import leaves untagged on purpose (``imports``, ``#| hide``, a loading
    step) are silent; tags it cannot map stay warnings.
    """
    read = read_tags(nb)
    adopted = any(c.role for c in nb.cells)
    out = []
    for cell in nb.cells:
        readings = read.get(cell.index)
        if not readings or cell.role:
            continue
        first = lead(readings)
        if first.kind in ("untagged", "metadata") and adopted:
            continue
        tag = first.tag
        tool = TOOLS[tag.dialect]
        kind = "tag" if tag.dialect == "kale" else "directive"
        others = [r.tag.written for r in readings if r is not first]
        also = f" (and {', '.join(f'`{o}`' for o in others)})" if others else ""
        text = f"has {tool}'s `{tag.written}` {kind}{also}, which nb2prod does not read"
        severity = "warning"
        if first.role == "skip":
            severity, text = "error", text + ", so this cell would run during training"
        elif first.role == "parameters":
            severity, text = "error", text + ", so the build would take no -p values"
        run = f"`{command(nb, tag.dialect)}`"
        if first.kind == "role":
            text += f"; {run} tags it {role_tag(first.role)} ({first.reason})."
        elif first.kind == "unclear":
            text += f", and nb2prod cannot map it: {first.reason}."
        else:
            text += f"; {run} imports the notebook's tags and leaves this cell untagged: "
            text += f"{first.reason}."
        where = f"{nb.path.name}: {cell.where}" + (f" line {tag.line}" if tag.line else "")
        out.append(
            Finding(
                "foreign-tags",
                severity,
                f"{where}: {text}",
                cell_index=cell.index,
                cell_id=cell.id,
                line=tag.line,
                name=tag.written,
                role=role_label(cell.role),
            )
        )
    return out
