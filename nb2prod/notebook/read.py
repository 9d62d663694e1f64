"""Read a notebook once, normalize it, and say which role each cell plays."""

from __future__ import annotations

import difflib
import hashlib
import json
import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.errors import NotebookError
from nb2prod.notebook.shape import (
    CELL_ID,
    MAX_DEPTH,
    decode,
    is_whole,
    json_kind,
    normalize,
    refuse,
    shown,
)

ROLES = ("parameters", "schema", "features", "train", "evaluate", "skip")
LIFTED_ROLES = ("schema", "features")
ROLE_PREFIX = "nb2prod:"
_COMMENT_ROLE = re.compile(r"^\s*#\|\s*nb2prod\s*:\s*(?P<role>[\w:-]*)\s*$")
COERCION = ("strict", "lenient")
# nb2prod.serving.runtime: try the compiled model and fall back, insist on it, or never try
RUNTIMES = ("auto", "compiled", "python")
SERVING_KEYS = ("runtime", "defer_below", "explain_max_rows")
EXPLAIN_MAX_ROWS = 100  # rows one POST /explain may hold, unless serving.explain_max_rows says
_NAMES = ("entrypoint", "model", "reference", "metrics", "input_schema")  # Python names
_NAME_OK = re.compile(r"[^a-z0-9_.-]+")


def role_tag(role: str) -> str:
    """The metadata tag that carries ``role`` (papermill's own tag for parameters)."""
    return role if role == "parameters" else ROLE_PREFIX + role


def role_label(role: str | None) -> str:
    """How a role is shown to people: ``nb2prod:features``, ``parameters`` or ``untagged``."""
    return role_tag(role) if role else "untagged"


@dataclass(frozen=True)
class Cell:
    """One code cell, with its index and id as JupyterLab shows them."""

    index: int
    id: str  # always a valid nbformat id: ``index-<n>`` when the cell has none, or a bad one
    source: str
    role: str | None
    unknown_roles: tuple[tuple[str, str], ...] = ()  # (as written, did-you-mean or "")
    conflicting_roles: tuple[str, ...] = ()
    role_line: int = 0  # 1 when the role comes from a ``#| nb2prod:`` first line
    bad_id: str | None = None  # repr of an id that breaks nbformat's pattern; check reports it
    same_id_as: int | None = None  # the earlier cell whose id this cell repeats

    @property
    def where(self) -> str:
        """``cell 5 (id 3f2a…, nb2prod:features)``: the name used in every message."""
        return f"cell {self.index} (id {self.id}, {role_label(self.role)})"


@dataclass(frozen=True)
class Settings:
    """Notebook-level settings from ``metadata.nb2prod``, with the documented defaults."""

    name: str
    entrypoint: str = "features"
    model: str = "model"
    reference: str = "X_train"
    metrics: str = "metrics"
    gates: dict[str, str] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    input_schema: str | None = None
    timeout: int = 600
    coercion: str = "strict"  # "lenient": let Pandera coerce 12.7 to 12, "12" to 12, true to 1
    # names the training run computes from the data that lifted code reads as constants
    learned: tuple[str, ...] = ()
    serving: dict[str, Any] = field(default_factory=dict)  # runtime, defer_below
    # {"X": ..., "y": ...}: the held-out rows and outcomes; None: X_test/y_test if bound
    evaluation: dict[str, str] | None = None
    promotion: dict[str, Any] = field(default_factory=dict)  # {"metric": ..., "min_delta": ...}

    @property
    def runtime(self) -> str:
        """``serving.runtime``: ``auto`` unless the notebook says otherwise."""
        return self.serving.get("runtime", "auto")

    @property
    def defer_below(self) -> float | None:
        """``serving.defer_below``: rows whose top class probability is under it are deferred."""
        return self.serving.get("defer_below")

    @property
    def explain_max_rows(self) -> int:
        """``serving.explain_max_rows``: the most rows one POST /explain may hold."""
        return int(self.serving.get("explain_max_rows", EXPLAIN_MAX_ROWS))


@dataclass(frozen=True)
class SettingProblem:
    """A setting whose value is wrong: its default stands in, and ``check`` reports it."""

    key: str
    message: str


@dataclass(frozen=True)
class Notebook:
    """A normalized notebook: its code cells with roles, and its settings."""

    path: Path
    node: dict[str, Any]  # the notebook JSON, normalized: every cell a dict with text source
    cells: tuple[Cell, ...]
    settings: Settings
    sha256: str
    problems: tuple[SettingProblem, ...] = ()

    def with_role(self, role: str) -> list[Cell]:
        return [c for c in self.cells if c.role == role]

    @property
    def lifted(self) -> list[Cell]:
        return [c for c in self.cells if c.role in LIFTED_ROLES]

    def cell_by_id(self, cell_id: str) -> Cell | None:
        return next((c for c in self.cells if c.id == cell_id), None)


# BentoML tags are at most 63 characters, and the model's tag adds "-model".
MAX_NAME = 57


def normalize_name(stem: str) -> str:
    """A BentoML-safe service name from a file stem: ``My Churn v2`` -> ``my_churn_v2``.

    A stem too long for a BentoML tag is cut to ``MAX_NAME`` characters.
    """
    return _slug(stem)[:MAX_NAME].rstrip("_.-") or "model"


def _slug(text: str) -> str:
    return _NAME_OK.sub("_", text.strip().lower()).strip("_.-")


def _roles_of(tags: list[str], source: str) -> tuple[list[str], list[str], int]:
    """Known and unknown roles named by a cell's tags and its ``#|`` first line."""
    known, unknown, role_line = [], [], 0
    written = [t[len(ROLE_PREFIX) :] for t in tags if t.startswith(ROLE_PREFIX)]
    if "parameters" in tags:
        written.append("parameters")
    first = source.lstrip("\n").split("\n", 1)[0]
    match = _COMMENT_ROLE.match(first)
    if match:
        written.append(match["role"].removeprefix(ROLE_PREFIX))
        role_line = 1
    for role in written:
        if role in ROLES:
            if role not in known:
                known.append(role)
        else:
            unknown.append(role)
    return known, unknown, role_line


def _suggest(role: str) -> str:
    close = difflib.get_close_matches(role, ROLES, n=1, cutoff=0.5)
    return close[0] if close else ""


def _setting_problems(raw: dict[str, Any], path: Path) -> list[SettingProblem]:
    """Values of the wrong type or form; each one is dropped from ``raw`` (its default stays)."""
    problems = []

    def bad(key: str, should: str) -> None:
        text = f"{path.name}: notebook setting nb2prod.{key} must be {should}, not {raw[key]!r}."
        problems.append(SettingProblem(key, text))
        del raw[key]

    if not isinstance(raw.get("name", ""), str):
        bad("name", "a string")
    elif len(_slug(raw.get("name") or "")) > MAX_NAME:
        bad("name", f"at most {MAX_NAME} characters (a BentoML tag holds 63, with '-model')")
    for key in _NAMES:
        value = raw.get(key, "x")
        if key == "input_schema" and value is None:
            continue
        if not _is_name(value):
            bad(key, "the name of a Python variable (a string such as 'model')")
    timeout = raw.get("timeout", 1)
    if isinstance(timeout, float) and timeout.is_integer():
        raw["timeout"] = timeout = int(timeout)
    if not is_whole(timeout) or timeout < 1:
        bad("timeout", "a positive whole number of seconds (per cell)")
    for key in ("gates", "monitoring", "properties"):
        if not isinstance(raw.get(key, {}), dict):
            bad(key, "a mapping")
    if raw.get("coercion", "strict") not in COERCION:
        bad("coercion", " or ".join(map(repr, COERCION)))
    problems += _serving_problems(raw, path)
    problems += _lifecycle_problems(raw, path)
    learned = raw.get("learned", [])
    if not isinstance(learned, list) or not all(_is_name(n) for n in learned):
        bad("learned", "a list of Python variable names (such as ['FARE_MEDIAN'])")
    else:
        raw["learned"] = tuple(dict.fromkeys(learned))
    return problems


def _serving_problems(raw: dict[str, Any], path: Path) -> list[SettingProblem]:
    """``nb2prod.serving``: a mapping of ``runtime`` (one of RUNTIMES) and ``defer_below``
    (a number in (0, 1]: the top class probability under which a row is deferred)."""
    serving = raw.get("serving", {})
    where = f"{path.name}: notebook setting nb2prod.serving"
    defer = serving.get("defer_below", 1) if isinstance(serving, dict) else 1
    cap = serving.get("explain_max_rows", 1) if isinstance(serving, dict) else 1
    if not isinstance(serving, dict):
        text = f"{where} must be a mapping such as {{'runtime': 'auto'}}, not {serving!r}."
    elif set(serving) - set(SERVING_KEYS):
        key = min(map(str, set(serving) - set(SERVING_KEYS)))
        close = difflib.get_close_matches(str(key), SERVING_KEYS, n=1, cutoff=0.5)
        keys = ", ".join(SERVING_KEYS)
        hint = f"; did you mean `{close[0]}`?" if close else f"; its keys are {keys}."
        text = f"{where} has unknown key `{key}`{hint}"
    elif isinstance(defer, bool) or not isinstance(defer, (int, float)) or not 0 < defer <= 1:
        text = (
            f"{where}.defer_below must be a number above 0 and at most 1 (the top class "
            f"probability under which a row is deferred to a person), not {defer!r}."
        )
    elif isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 10_000:
        text = (
            f"{where}.explain_max_rows must be a whole number from 1 to 10000 (the most rows "
            f"one POST /explain may hold), not {cap!r}."
        )
    elif serving.get("runtime", "auto") not in RUNTIMES:
        value = serving["runtime"]
        close = difflib.get_close_matches(str(value), RUNTIMES, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        text = f"{where}.runtime must be {', '.join(map(repr, RUNTIMES))}, not {value!r}{hint}"
    else:
        return []
    del raw["serving"]
    return [SettingProblem("serving", text)]


def _lifecycle_problems(raw: dict[str, Any], path: Path) -> list[SettingProblem]:
    """``evaluation`` ({"X": name, "y": name}, or {} for none) and ``promotion``
    ({"metric": name, "min_delta": number}); a wrong one is dropped, its default stays."""
    where, found = f"{path.name}: notebook setting nb2prod", []
    evaluation = raw.get("evaluation")
    names = isinstance(evaluation, dict) and all(_is_name(evaluation.get(k)) for k in "Xy")
    shaped = names and set(evaluation) == {"X", "y"}
    if evaluation is not None and evaluation != {} and not shaped:
        text = (
            f"{where}.evaluation must be a mapping of X and y to Python variable names "
            f'(such as {{"X": "X_test", "y": "y_test"}}), or {{}} for none, not {evaluation!r}.'
        )
        found.append(SettingProblem("evaluation", text))
        del raw["evaluation"]
    promotion = raw.get("promotion", {})
    delta = promotion.get("min_delta", 0) if isinstance(promotion, dict) else None
    if (
        not isinstance(promotion, dict)
        or set(promotion) - {"metric", "min_delta"}
        or not isinstance(promotion.get("metric", ""), str)
        or isinstance(delta, bool)
        or not isinstance(delta, (int, float))
        or not math.isfinite(delta)
    ):
        text = (
            f"{where}.promotion must be a mapping with a metric name and a number min_delta "
            f'(such as {{"metric": "roc_auc", "min_delta": 0.01}}), not {promotion!r}.'
        )
        found.append(SettingProblem("promotion", text))
        del raw["promotion"]
    return found


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value.isidentifier() and not keyword.iskeyword(value)


def _settings(meta: dict[str, Any], path: Path) -> tuple[Settings, tuple[SettingProblem, ...]]:
    raw = meta.get("nb2prod")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = json_kind(raw)
        raise refuse(
            path, f": notebook metadata nb2prod must be a mapping of settings, not {kind}."
        )
    raw = dict(raw)
    allowed = set(Settings.__dataclass_fields__)
    extra = sorted(set(raw) - allowed)
    if extra:
        raise NotebookError(
            f"{path}: notebook metadata nb2prod has unknown setting(s) {', '.join(extra)}; "
            f"known settings are {', '.join(sorted(allowed))}.",
            notebook=str(path),
        )
    problems = _setting_problems(raw, path)
    stem = path.name.removesuffix(".pct.py") if path.name.endswith(".pct.py") else path.stem
    raw["name"] = normalize_name(raw.get("name") or stem)
    return Settings(**raw), tuple(problems)


def _cells(node: dict[str, Any]) -> tuple[Cell, ...]:
    cells, seen = [], {}
    for index, raw in enumerate(node["cells"]):
        cell_id, first = raw.get("id"), None
        valid = isinstance(cell_id, str) and CELL_ID.fullmatch(cell_id)
        if valid:
            first = seen.setdefault(cell_id, index)
        if raw["cell_type"] != "code":
            continue
        source = raw["source"]
        known, unknown, role_line = _roles_of(raw["metadata"].get("tags", []), source)
        cells.append(
            Cell(
                index=index,
                id=cell_id if valid else f"index-{index}",
                source=source,
                role=known[0] if known else None,
                unknown_roles=tuple((u, _suggest(u)) for u in unknown),
                conflicting_roles=tuple(known[1:]),
                role_line=role_line if known or unknown else 0,
                bad_id=None if valid or "id" not in raw else repr(cell_id),
                same_id_as=first if first != index else None,
            )
        )
    return tuple(cells)


def parse(text: str, path: Path) -> Notebook:
    """Parse notebook JSON text into a normalized :class:`Notebook`.

    Plain ``json`` on purpose: importing nbformat costs seconds (its JSON-schema validator),
    and ``check`` must stay well under two.
    """
    try:
        node = json.loads(text)
    except RecursionError:
        raise refuse(path, f": its JSON is nested more than {MAX_DEPTH} levels deep.") from None
    except ValueError as exc:
        raise refuse(path, f" is not a readable Jupyter notebook: {exc}.") from exc
    node = normalize(node, path)
    settings, problems = _settings(node["metadata"], path)
    return Notebook(
        path=path,
        node=node,
        cells=_cells(node),
        settings=settings,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        problems=problems,
    )


def parse_content(content: dict[str, Any], path: Path) -> Notebook:
    """Parse the notebook JSON an editor holds (JupyterLab's model, saved or not)."""
    try:
        text = json.dumps(content)
    except RecursionError:
        raise refuse(path, f": its JSON is nested more than {MAX_DEPTH} levels deep.") from None
    except (TypeError, ValueError) as exc:
        raise refuse(path, f": the notebook content is not JSON ({exc}).") from None
    return parse(text, path)


def read(path: str | Path) -> Notebook:
    """Read and normalize the notebook at ``path``: an ``.ipynb``, or a percent script
    (``.py``, read with jupytext: ``notebook/formats.py``).

    Raises:
        NotebookError: the file is missing, unreadable, not UTF-8 JSON or not a notebook.
    """
    from dataclasses import replace

    from nb2prod.notebook import formats

    path = Path(path)
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or exc
        raise NotebookError(
            f"Cannot read notebook {shown(path)}: {reason}.", notebook=str(path)
        ) from exc
    if not formats.is_text(path):
        return parse(decode(data, path), path)
    notebook = parse(formats.to_json(data, path), path)
    # the file as it is in git, not the JSON it was read into
    return replace(notebook, sha256=hashlib.sha256(data).hexdigest())
