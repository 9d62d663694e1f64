"""What a training run read: the kernel's record of its reads, hashed, and compared later.

The first cell a training run executes (``templates/reads_cell.py.jinja``, part ``start``)
adds an audit hook (:func:`sys.addaudithook`) that notes every file opened for reading and
every folder listed, and wraps the columnar readers (parquet, feather, ORC) that open
files in C++, past Python's ``open``. The last cell (part ``done``) writes the record to
:data:`READS_FILE` in the run's directory, as JSON::

    {"files": [absolute path, ...],          # opened for reading before any write
     "listed": [absolute folder, ...],       # listed by glob(), os.walk(), os.listdir()
     "elsewhere": [[kind, detail], ...]}     # reads nothing can hash: network, databases

Python, its packages, nb2prod, the kernel's own files and the run's own output are left
out. :func:`inputs` hashes what is left into the build cache's entry, and :func:`changed`
tells a later build whether any of it changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
READS_FILE = "reads.json"
READS_TAG = "nb2prod-reads"  # the tag of the two injected cells
# The "hash" of a path that is not there: libraries probe for optional files (a config) and
# open() is noted before it fails. Still absent later is no change; there now is.
ABSENT = "absent"


@dataclass(frozen=True)
class Inputs:
    """What a training run read, hashed: the part of a cache entry that says "same data"."""

    files: dict[str, str] = field(default_factory=dict)  # path: sha256 of its bytes
    listed: dict[str, str] = field(default_factory=dict)  # folder: sha256 of its names
    trees: dict[str, str] = field(default_factory=dict)  # folder read whole: of all its paths
    off: str | None = None  # why this notebook is never a cache hit, as a sentence

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "listed": self.listed, "trees": self.trees, "off": self.off}


def render_context(out_dir: Path, part: str) -> dict[str, Any]:
    """The context of ``reads_cell.py.jinja``: where the record goes, what is not data."""
    from nb2prod.builder.codegen import template_dir

    package = Path(__file__).resolve().parent.parent
    skipped = [str(out_dir.resolve()), str(package), str(template_dir().resolve())]
    return {"part": part, "out_file": str(out_dir.resolve() / READS_FILE), "skipped": skipped}


def sha256_file(path: Path) -> str:
    """The sha256 of ``path``'s bytes, or :data:`ABSENT`."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return ABSENT
    return digest.hexdigest()


def _names(folder: Path, *, whole: bool = False) -> str:
    """A hash of the names in ``folder``; ``whole``: of every file's path under it."""
    try:
        if not folder.is_dir():
            return ABSENT
        found = folder.rglob("*") if whole else folder.iterdir()
        names = sorted(p.relative_to(folder).as_posix() for p in found)
    except OSError:
        return ABSENT
    return hashlib.sha256("\0".join(names).encode()).hexdigest()


def off_reason(elsewhere: list[list[str]]) -> str | None:
    """The sentence saying why the cache is off: the first read that cannot be hashed."""
    if not elsewhere:
        return None
    kind, detail = elsewhere[0]
    return f"its training run read from {kind} ({detail})"


def inputs(train_dir: Path) -> Inputs:
    """Hash what the training run in ``train_dir`` read, as the cache entry keeps it.

    A run that left no record (it was not made by this nb2prod) turns the cache off.
    """
    try:
        record = json.loads((train_dir / READS_FILE).read_text(encoding="utf-8"))
        names, folders = list(record["files"]), list(record["listed"])
        elsewhere = [list(e) for e in record["elsewhere"]]
    except (OSError, ValueError, KeyError, TypeError):
        return Inputs(off="its training run left no record of the files it read")
    files, trees = {}, {}
    for name in names:
        path = Path(name)
        if path.is_dir():  # a dataset folder, read whole: a file added to it is new data
            trees[name] = _names(path, whole=True)
            files |= {str(p): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
        else:
            files[name] = sha256_file(path)
    listed = {name: _names(Path(name)) for name in folders}
    return Inputs(files=files, listed=listed, trees=trees, off=off_reason(elsewhere))


def changed(recorded: dict[str, Any]) -> str | None:
    """What differs from the inputs a cache entry recorded, in words; None when nothing does.

    Any file whose bytes changed, a file gone, a folder with other names: a changed input.
    """
    try:
        files, listed, off = recorded["files"], recorded["listed"], recorded["off"]
        trees = recorded["trees"]
    except (KeyError, TypeError):
        return "the cache entry does not say what its training run read"
    if off:
        return f"cache off for this notebook: {off}"
    for name, digest in files.items():
        now = sha256_file(Path(name))
        if now != digest:
            return f"data changed: {name}" + (" (gone)" if now == ABSENT else "")
    for name, digest in listed.items():
        if _names(Path(name)) != digest:
            return f"data changed: {name} (its files are not the same)"
    for name, digest in trees.items():
        if _names(Path(name), whole=True) != digest:
            return f"data changed: {name} (its files are not the same)"
    return None


def data_manifest(found: Inputs, folder: Path) -> dict[str, Any]:
    """What a bento's manifest records of the data its training read (``nb2prod rebuild``
    compares it): ``{file: sha256}``, a file under the notebook's ``folder`` named relative
    to it (another checkout names it the same), and why the cache is off, if it is."""
    base = folder.resolve()
    files = {}
    for name, digest in sorted(found.files.items()):
        path = Path(name)
        files[path.relative_to(base).as_posix() if path.is_relative_to(base) else name] = digest
    return {"files": files, "off": found.off}
