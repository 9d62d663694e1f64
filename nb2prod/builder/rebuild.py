"""``nb2prod rebuild TAG``: build a bento's notebook again, fresh, and name what differs.

The bento's manifest (``nb2prod.json``) says what made it: the notebook (its path and
sha256), the parameters as the kernel saw them, the sha256 of every file training read
(``data``), the package pins, nb2prod and Python. The rebuild trains the same notebook with
the same parameters, past the build cache, and compares the two manifests: the same version
and metrics, or each difference by name. Differences in the version or the metrics while
every cause is the same are the training's own nondeterminism, and are called that.
"""

from __future__ import annotations

import ast
import json
import logging
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento.locate import MANIFEST, open_bento
from nb2prod.builder.lift import git
from nb2prod.errors import RebuildError

if TYPE_CHECKING:
    from nb2prod.builder.pipeline import Progress

log = logging.getLogger(__name__)
# What can make a rebuild differ; the rest (metrics, version, ...) is what differs because.
CAUSES = ("notebook", "parameter", "data", "package", "environment")
ABSENT = "absent"  # builder.reads.ABSENT: the file was opened, but was not there


@dataclass(frozen=True)
class Difference:
    """One thing that is not the same in the rebuild: its kind, its name, old and new."""

    kind: str  # a CAUSE, or metric, version, reference, code, runtime
    name: str
    old: Any
    new: Any

    def __str__(self) -> str:
        if self.kind == "data":
            return f"data {self.name}: {_data_change(self.old, self.new)}"
        if self.kind == "notebook":
            return f"notebook {self.name}: sha256 {_short(self.old)} -> {_short(self.new)}"
        return f"{self.kind} {self.name}: {_shown(self.old)} -> {_shown(self.new)}"


@dataclass
class RebuildReport:
    """The rebuild of ``old_tag``: what it made, and every difference from the original."""

    old_tag: str
    new_tag: str
    notebook: str  # the notebook that was rebuilt
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why

    @property
    def same(self) -> bool:
        return not self.differences

    @property
    def verdict(self) -> str:
        """``same``; ``changed`` (a cause differs); ``nondeterministic`` (no cause does)."""
        if self.same:
            return "same"
        return "changed" if any(d.kind in CAUSES for d in self.differences) else "nondeterministic"

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_tag": self.old_tag,
            "new_tag": self.new_tag,
            "notebook": self.notebook,
            "verdict": self.verdict,
            "differences": [
                {"kind": d.kind, "name": d.name, "old": d.old, "new": d.new, "text": str(d)}
                for d in self.differences
            ],
            "notes": self.notes,
        }


def _short(digest: Any) -> str:
    return f"{digest[:12]}..." if isinstance(digest, str) and len(digest) > 12 else str(digest)


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _data_change(old: str | None, new: str | None) -> str:
    if old is None:
        return "read by the rebuild only (added)"
    if new is None:
        return "not read by the rebuild (missing)"
    if new == ABSENT:
        return "gone"
    if old == ABSENT:
        return "there now, absent at the original build"
    return f"sha256 changed ({_short(old)} -> {_short(new)})"


def _pins(manifest: dict[str, Any]) -> dict[str, str]:
    pins = {}
    for pin in manifest.get("packages") or []:
        name, _, version = pin.partition("==")
        pins[name] = version
    return pins


def _dict_diff(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[Difference]:
    return [
        Difference(kind, name, old.get(name), new.get(name))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


def compare(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[Difference], list[str]]:
    """Every difference between two bentos' manifests, causes first; and notes on what the
    manifests do not let it compare (a bento built before the data was recorded)."""
    found: list[Difference] = []
    notes: list[str] = []
    if old.get("notebook_sha256") != new.get("notebook_sha256"):
        name = new.get("notebook") or old.get("notebook")
        found.append(
            Difference("notebook", name, old.get("notebook_sha256"), new.get("notebook_sha256"))
        )
    found += _dict_diff("parameter", old.get("parameters") or {}, new.get("parameters") or {})
    if "data" not in old:
        notes.append(
            "the bento's manifest does not record what its training read (an older nb2prod "
            "built it): the data was not compared"
        )
    else:
        for manifest in (old, new):
            if (manifest.get("data") or {}).get("off"):
                notes.append(f"{manifest.get('tag')}: {manifest['data']['off']}: not compared")
        old_files = (old.get("data") or {}).get("files") or {}
        new_files = (new.get("data") or {}).get("files") or {}
        found += _dict_diff("data", old_files, new_files)
    found += _dict_diff("package", _pins(old), _pins(new))
    for key, name in (("nb2prod_version", "nb2prod"), ("python", "python")):
        if old.get(key) != new.get(key):
            found.append(Difference("environment", name, old.get(key), new.get(key)))
    # what differs because of the above, or, when nothing above does, by chance
    found += _dict_diff("metric", old.get("metrics") or {}, new.get("metrics") or {})
    effects = (
        (
            "reference",
            "sample",
            (old.get("reference") or {}).get("sha256"),
            (new.get("reference") or {}).get("sha256"),
        ),
        ("code", "lifted", old.get("lifted_sha256"), new.get("lifted_sha256")),
        (
            "runtime",
            "serving",
            (old.get("serving") or {}).get("runtime"),
            (new.get("serving") or {}).get("runtime"),
        ),
        ("version", old.get("name", "bento"), old.get("version"), new.get("version")),
    )
    for kind, name, before, after in effects:
        if before != after:
            found.append(Difference(kind, name, _short(before), _short(after)))
    return found, notes


def _git_root(folder: Path) -> Path | None:
    top = git(folder, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def find_notebook(manifest: dict[str, Any], given: Path | None = None) -> Path:
    """The notebook a bento was built from: ``given``, else the path the manifest records,
    else its path in the git repository of the working directory (another clone), else
    its file name in the working directory; one whose sha256 matches comes first.

    Raises:
        RebuildError: none of them is there.
    """
    tag = manifest.get("tag", "the bento")
    if given is not None:
        if not given.is_file():
            raise RebuildError(f"Cannot rebuild {tag}: --notebook {given} is not a file.")
        return given
    candidates = []
    if manifest.get("notebook_path"):
        candidates.append(Path(manifest["notebook_path"]))
    root = _git_root(Path.cwd())
    if manifest.get("notebook_repo_path") and root is not None:
        candidates.append(root / manifest["notebook_repo_path"])
    if manifest.get("notebook"):
        candidates.append(Path.cwd() / manifest["notebook"])
    there = [c for c in dict.fromkeys(candidates) if c.is_file()]
    from nb2prod.builder.reads import sha256_file

    for path in there:
        if sha256_file(path) == manifest.get("notebook_sha256"):
            return path
    if there:
        return there[0]
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates)) or "nowhere"
    raise RebuildError(
        f"Cannot rebuild {tag}: its notebook {manifest.get('notebook', '?')} is not at "
        f"{looked}; give its path with --notebook PATH."
    )


def parameters(manifest: dict[str, Any], notebook: Path) -> tuple[dict[str, Any], list[str]]:
    """The parameter values to rebuild with, from the manifest's reprs, for the names the
    notebook's parameters cell still sets; and a note for each value that is no literal."""
    from nb2prod.notebook.check import check

    known = set(check(notebook).plan.parameters)
    values, notes = {}, []
    for name, text in (manifest.get("parameters") or {}).items():
        if name not in known:
            continue  # gone from the notebook: the comparison names it
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            notes.append(f"parameter {name} was {text}, not a literal: the notebook's own is used")
    return values, notes


def rebuild(
    target: str | Path,
    *,
    notebook: Path | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
) -> RebuildReport:
    """Build the notebook of the bento ``target`` again, past the build cache, and compare.

    Args:
        target: the bento: a tag in the store, a ``.bento`` file or a build directory.
        notebook: where the notebook is, when not where the manifest says.
        out_dir: where the rebuild goes; a temporary directory, removed, by default (the
            rebuilt bento is in the BentoML store either way).
        progress: the build's progress hook.

    Raises:
        BentoNotFound: no such bento.
        RebuildError: its notebook cannot be found.
        Nb2ProdError: the rebuild failed (the build's own error).
    """
    from nb2prod.builder.pipeline import build

    with open_bento(target) as bento:
        old = bento.manifest
    path = find_notebook(old, notebook)
    values, notes = parameters(old, path)
    gate = (old.get("properties") or {}).get("gate", True)
    log.info("rebuilding %s from %s (parameters: %s)", old.get("tag"), path, values or "defaults")
    where = tempfile.TemporaryDirectory(prefix="nb2prod-rebuild-") if out_dir is None else None
    with where if where is not None else nullcontext(str(out_dir)) as folder:
        result = build(
            path, values, out_dir=Path(folder), progress=progress, gate=gate, use_cache=False
        )
        new = json.loads((result.build_dir / "src" / MANIFEST).read_text(encoding="utf-8"))
    differences, more = compare(old, new)
    return RebuildReport(
        old.get("tag", str(target)), new["tag"], str(path), differences, notes + more
    )


def report_lines(report: RebuildReport) -> list[str]:
    """The report as the CLI prints it: the verdict, then one line per difference and note."""
    if report.verdict == "same":
        head = f"same: {report.new_tag} rebuilt from {report.notebook}, same version and metrics"
    elif report.verdict == "changed":
        head = f"different: {report.old_tag} rebuilt as {report.new_tag}"
    else:
        head = (
            f"nondeterministic: {report.old_tag} rebuilt as {report.new_tag} from the same "
            "notebook, parameters, data and packages: the training is not deterministic "
            "(seed its random state)"
        )
    return [head, *(f"  {d}" for d in report.differences), *(f"  note: {n}" for n in report.notes)]
