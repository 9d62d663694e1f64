"""README.md and docs/*.md: every relative link resolves, and every repo path they name exists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIPPED_SCHEMES = ("http://", "https://", "mailto:")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
# [text](target) and ![alt](target), with an optional "title"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
# The repo paths a renamed module could leave behind: a whole code span, relative to the root.
REPO_PATH = re.compile(
    r"(?:nb2prod/[\w./-]+\.py|tests/[\w./-]+\.py|templates/[\w./-]+\.jinja|src/[\w./-]+\.ts)"
)


def _id(doc: Path) -> str:
    return doc.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """``text`` with fenced code blocks blanked, line count kept, so offsets map to lines."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def without_code_spans(text: str) -> str:
    """``text`` with each inline code span blanked to spaces (newlines kept)."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lowercase, punctuation but hyphens
    (and underscores) dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """Every heading anchor of ``doc``, repeated headings numbered as GitHub numbers them."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose(doc.read_text(encoding="utf-8")).split("\n"):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(doc: Path) -> list[str]:
    """``line: target (why)`` for each relative link of ``doc`` that does not resolve."""
    text = without_code_spans(prose(doc.read_text(encoding="utf-8")))
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1).strip("<>")
        if target.startswith(SKIPPED_SCHEMES):
            continue
        where = f"{_id(doc)}:{line_of(text, match.start())}: ({target})"
        path_part, _, anchor = unquote(target).partition("#")
        if not path_part and not anchor:
            broken.append(f"{where} is empty")
            continue
        base = ROOT if path_part.startswith("/") else doc.parent
        path = (base / path_part.lstrip("/")).resolve() if path_part else doc
        if not path.is_relative_to(ROOT):
            broken.append(f"{where} points outside the repository")
        elif not path.exists():
            broken.append(f"{where}: no such file {path.relative_to(ROOT).as_posix()}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{where}: no heading #{anchor} in {path.relative_to(ROOT).as_posix()}")
    return broken


def missing_repo_paths(doc: Path) -> list[str]:
    """``line: path`` for each code span of ``doc`` that names a repo file that is not there."""
    text = prose(doc.read_text(encoding="utf-8"))
    return [
        f"{_id(doc)}:{line_of(text, m.start())}: `{m.group(2).strip()}` does not exist"
        for m in CODE_SPAN.finditer(text)
        if REPO_PATH.fullmatch(m.group(2).strip()) and not (ROOT / m.group(2).strip()).is_file()
    ]


def test_the_docs_are_found() -> None:
    assert ROOT / "README.md" in DOCS
    assert len(DOCS) > 1


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Set-up on a fresh machine: two commands", "set-up-on-a-fresh-machine-two-commands"),
        ("`nb2prod monitor`", "nb2prod-monitor"),
        (
            "Settings (notebook metadata `nb2prod.monitoring`)",
            "settings-notebook-metadata-nb2prodmonitoring",
        ),
        ("Run of 2026-11-22 01:34 UTC", "run-of-2026-11-22-0134-utc"),
        ("The [panel](docs/x.md) and max_rows", "the-panel-and-max_rows"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = broken_links(doc)
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_every_repo_path_named_exists(doc: Path) -> None:
    missing = missing_repo_paths(doc)
    assert not missing, "paths that are not in the repository:\n" + "\n".join(missing)
