"""Cell-level name analysis: magics set aside, free names found at any depth."""

from __future__ import annotations

from nb2prod.notebook.read import Cell
from nb2prod.notebook.scope import ParsedCell, strip_magics


def test_magics_and_shell_lines_are_blanked_keeping_line_numbers() -> None:
    source = "%matplotlib inline\nx = 1\nfiles = !ls\ndf.head?\ny = 'why?'  # really?\n!pip list"
    text, found = strip_magics(source)
    assert [line for line, _ in found] == [1, 3, 4, 6]
    assert text.split("\n")[1] == "x = 1" and text.split("\n")[4] == "y = 'why?'  # really?"


def test_free_names_cover_functions_classes_and_comprehensions() -> None:
    cell = Cell(
        index=0,
        id="a",
        source=(
            "import numpy as np\nfrom os import path as p\nK = 2\n"
            "def f(df):\n    return [np.log(v) * K * SCALE for v in df]\n"
            "class M:\n    size = LIMIT\n"
        ),
        role="features",
    )
    parsed = ParsedCell(cell)
    assert {"np", "p", "K", "f", "M"} <= parsed.defined
    assert {"SCALE", "LIMIT", "np", "K"} <= parsed.free
    assert "v" not in parsed.free and "df" not in parsed.free
    assert set(parsed.imports) == {"np", "p"}
    assert parsed.first_use("SCALE") == 5


def test_a_cell_python_cannot_compile_is_marked_not_raised() -> None:
    # Given a 10,000-term expression (RecursionError in ast) and a NUL byte (a SyntaxError)
    long = ParsedCell(Cell(0, "a", "x = " + "+".join(["1"] * 10_000), "features"))
    nul = ParsedCell(Cell(1, "b", "x = 1\x00", "features"))
    # Then each is parsed as far as it goes, with no names, and the reason kept
    assert long.too_deep and long.tree is None and long.syntax_error is None
    assert (long.defined, long.free, long.imports) == (set(), set(), {})
    assert nul.syntax_error is not None and "null bytes" in nul.syntax_error.msg
    assert not nul.too_deep and nul.tree is None
