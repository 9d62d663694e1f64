"""requirements.lock: what `make install` installs, and what it was resolved from.

The running venv must hold exactly the locked version of every locked package (a fresh
clone's `make install` then matches the lock), and the lock must still satisfy every
requirement pyproject.toml states (a lock older than an edit of pyproject is stale).
"""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"


def _locked() -> dict[str, Version]:
    """The lock's pins that apply to this interpreter and platform, by canonical name."""
    pins: dict[str, Version] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(("#", " ")):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        (spec,) = req.specifier  # a lock pins: one ==, never a range
        assert spec.operator == "==", f"{line!r} is not a pin"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{req.name} is pinned twice for this interpreter"
        pins[name] = Version(spec.version)
    return pins


def _stated() -> list[tuple[str, Requirement]]:
    """Every requirement pyproject.toml states: dependencies, the dev extra, build needs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    hook = project["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]
    found = [
        *(("dependencies", r) for r in project["project"]["dependencies"]),
        *(("dev", r) for r in project["project"]["optional-dependencies"]["dev"]),
        *(("build-system", r) for r in project["build-system"]["requires"]),
        *(("jupyter-builder hook", r) for r in hook["dependencies"]),
    ]
    return [(where, Requirement(text)) for where, text in found]


def test_the_lock_pins_packages_for_this_interpreter() -> None:
    pins = _locked()
    # the heart of a bento's pins and of the build itself
    for name in ("bentoml", "pandas", "numpy", "scikit-learn", "mlflow", "hatchling"):
        assert name in pins, f"{name} is not in {LOCK.name}"


def test_the_venv_holds_exactly_the_locked_versions() -> None:
    wrong = []
    for name, version in sorted(_locked().items()):
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            wrong.append(f"{name}: locked {version}, not installed")
            continue
        if Version(installed) != version:
            wrong.append(f"{name}: locked {version}, installed {installed}")
    assert not wrong, f"the venv does not match {LOCK.name} (run make install): " + "; ".join(wrong)


def test_the_lock_satisfies_every_requirement_of_pyproject() -> None:
    pins = _locked()
    stale = []
    for where, req in _stated():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            stale.append(f"{req.name} ({where}) is not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            stale.append(f"{req.name} ({where}) wants {req.specifier}, the lock has {pins[name]}")
    assert not stale, f"{LOCK.name} is stale (run make lock): " + "; ".join(stale)


def test_make_install_syncs_the_lock_and_make_lock_writes_it() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installed = re.search(r"^\$\(VENV\)/\.installed: (.*)$", makefile, re.MULTILINE)
    assert installed and "$(LOCK)" in installed.group(1), "the install must rerun on a new lock"
    assert "uv pip sync" in makefile and "--no-deps" in makefile
    header = LOCK.read_text(encoding="utf-8").splitlines()[:2]
    assert header[1].strip() == "#    make lock", header
