"""Render the generated sources from Jinja templates, then format and compile-check them."""

from __future__ import annotations

import functools
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import CodegenError

if TYPE_CHECKING:
    import jinja2


_PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = (
    _PACKAGE / "templates",  # inside an installed wheel
    _PACKAGE.parent / "templates",  # in a checkout
)


def template_dir() -> Path:
    """Where the templates live: inside the wheel, or the checkout's ``templates/``."""
    for path in TEMPLATE_DIRS:
        if path.is_dir():
            return path
    raise CodegenError("nb2prod's templates are missing; reinstall nb2prod.")


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one cached Jinja environment: strict, no autoescape, a filter per target.

    ``repr`` (a Python literal), ``docstring``, ``comment`` and ``yaml_str``: every value
    from a notebook (its file name, cell ids, settings) goes through the one for its place.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["repr"] = literal  # a Python literal
    env.filters["docstring"] = docstring
    env.filters["comment"] = comment
    env.filters["yaml_str"] = yaml_str
    return env


_COOKIE = re.compile(r"(coding)([:=])")  # PEP 263: on line 1 or 2 it sets the file's encoding
_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    """One character as an escape that Python strings and YAML double-quoted scalars share."""
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escaped(text: object, quotes: str = "") -> str:
    """``text`` on one line: printable characters as they are; a backslash, the ``quotes``
    and every other character (line breaks, controls, lone surrogates) as an escape that
    Python and YAML double-quoted strings both read back."""
    return "".join(
        c if c.isprintable() and c != "\\" and c not in quotes else _escape_char(c)
        for c in str(text)
    )


def literal(value: object) -> str:
    """``value`` as a Python literal: its ``repr``, with non-finite floats spelled out."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


def docstring(text: object) -> str:
    """``text`` safe inside a triple-quoted docstring: nothing in it can end the string."""
    return _escaped(text, quotes='"')


def comment(text: object) -> str:
    """``text`` safe in a ``#`` comment: one line, and no encoding declaration."""
    return _COOKIE.sub(lambda m: m[1] + _escape_char(m[2]), _escaped(text))


def yaml_str(text: object) -> str:
    """``text`` as a double-quoted YAML scalar, whatever it holds."""
    return '"' + _escaped(text, quotes='"') + '"'


def render(template: str, context: dict[str, Any]) -> str:
    """Render one template with ``context``."""
    return environment().get_template(template).render(**context)


def _ruff() -> str:
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_python(source: str, filename: str) -> str:
    """Format with ruff and compile-check; raise :class:`CodegenError` on either failure."""
    try:
        compile(source, filename, "exec")
    except SyntaxError as exc:
        raise CodegenError(
            f"Generated {filename} does not compile (line {exc.lineno}: {exc.msg}); "
            "this is a bug in nb2prod, please report it.",
            file=filename,
            line=exc.lineno,
        ) from exc
    proc = subprocess.run(
        [_ruff(), "format", "--quiet", "--line-length", "100", "--stdin-filename", filename, "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CodegenError(f"ruff could not format generated {filename}: {proc.stderr.strip()}.")
    return proc.stdout


@dataclass(frozen=True)
class Generated:
    """One generated file: its path relative to the bento's src/, and its text."""

    path: str
    text: str


def generate(context: dict[str, Any], files: dict[str, str]) -> list[Generated]:
    """Render ``files`` (output path -> template name); Python outputs are formatted."""
    out = []
    for path, template in files.items():
        text = render(template, context)
        if path.endswith(".py"):
            text = format_python(text, path)
        out.append(Generated(path, text))
    return out


def write(generated: list[Generated], root: Path) -> None:
    """Write generated files below ``root``."""
    for item in generated:
        target = root / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.text, encoding="utf-8")
