"""Generated code against golden files; the generator's formatting and strictness.

Update the golden files after an intended change with
``NB2PROD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_codegen.py``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from nb2prod.builder.codegen import comment, docstring, format_python, literal, render, yaml_str
from nb2prod.errors import CodegenError
from tests.support import GOLDEN, generated, normalize

UPDATE = os.environ.get("NB2PROD_UPDATE_GOLDEN") == "1"
UPDATE_COMMAND = "NB2PROD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_codegen.py"


# clean: every generated file; parameter_lifted: only what the lifted parameter changes;
# defer_below: the service that answers and logs deferred rows
@pytest.mark.parametrize(
    ("fixture", "only"),
    [("clean", ""), ("parameter_lifted", "lifted/"), ("defer_below", "service.py")],
)
def test_generated_files_match_golden(fixture: str, only: str, tmp_path: Path) -> None:
    files = {k: v for k, v in generated(fixture, tmp_path).items() if k.startswith(only)}
    root = GOLDEN / fixture
    if UPDATE:
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    golden = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(golden), (
        f"the generated file set changed: {sorted(set(files) ^ set(golden))}; if that was "
        f"intended, update the golden files: {UPDATE_COMMAND}"
    )
    for path, text in files.items():
        if text != golden[path]:
            diff = difflib.unified_diff(
                golden[path].splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"golden/{fixture}/{path}",
                f"generated/{path}",
            )
            pytest.fail(
                f"{path} differs from {root / path}:\n{''.join(diff)}\n"
                f"If the change is intended, update the golden files: {UPDATE_COMMAND}",
                pytrace=False,
            )


def test_runtime_modules_ship_verbatim_under_the_header(tmp_path: Path) -> None:
    from nb2prod import serving

    files = generated("clean", tmp_path, runtime=True)
    for target, text in serving.sources().items():
        header, _, body = files[target].partition("\n")
        assert header.startswith("# Generated from clean.ipynb by nb2prod ")
        assert body == normalize(text, "<no version in the runtime>")


def test_generated_python_carries_header_and_provenance(tmp_path: Path) -> None:
    files = generated("clean", tmp_path, runtime=True)
    for path, text in files.items():
        if path.endswith((".py", ".yaml")):
            assert "Generated from clean.ipynb by nb2prod" in text.splitlines()[0] + text[:300], (
                path
            )
            assert "edit the notebook, not this file" in text[:400], path
    assert "# %% clean.ipynb · cell 3 (clean-3)" in files["lifted/schema.py"]
    assert "# %% clean.ipynb · cell 4 (clean-4)" in files["lifted/features.py"]
    assert (
        "import pandas as pd  # from cell 2 (id clean-2, untagged)" in files["lifted/features.py"]
    )


def test_generated_python_is_formatted(tmp_path: Path) -> None:
    for path, text in generated("clean", tmp_path).items():
        if path.endswith(".py"):
            assert format_python(text, path) == text, f"{path} is not ruff-formatted"


def test_code_that_does_not_compile_is_refused() -> None:
    with pytest.raises(CodegenError, match="does not compile"):
        format_python("def broken(:\n", "broken.py")


def test_strict_undefined_catches_a_missing_context_key() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("bentofile.yaml.jinja", {"header": "h"})


HOSTILE = [
    'it\'s "my" churn.ipynb',
    'a"""b.ipynb',
    'ends with a quote"',
    "back\\slash\\",
    "line\nbreak\r\n\u2028\x85\x0c tab\t",
    "{{ 7*7 }} {% if x %} # not: a comment",
    'key: "value"\n- item',
    "# -*- coding: utf_7 -*- coding=latin-1",
    "é · 😀 \udcff",  # non-ASCII, and a lone surrogate (an undecodable byte in a file name)
]


@pytest.mark.parametrize("text", HOSTILE)
def test_each_filter_keeps_any_text_inside_its_target(text: str) -> None:
    import ast
    import re

    import yaml

    # a docstring: it reads back as the text, and nothing of it became code
    tree = ast.parse(f'def f():\n    """{docstring(text)}"""\n')
    assert ast.get_docstring(tree.body[0], clean=False) == text
    # a comment: one line, with no encoding declaration (PEP 263) in it
    line = f"# {comment(text)}"
    assert len(line.splitlines()) == 1 and ast.parse(f"{line}\n{line}\nx = 1\n").body
    assert not re.search(r"coding[:=]", line)
    # a YAML scalar: it reads back as the text
    assert yaml.safe_load(f"value: {yaml_str(text)}\nnext: 1\n") == {"value": text, "next": 1}
    # a Python literal
    assert ast.literal_eval(literal(text)) == text


def test_a_non_finite_float_is_still_a_python_expression() -> None:
    import math

    for value in (math.inf, -math.inf):
        assert eval(literal(value)) == value
    assert math.isnan(eval(literal(math.nan)))
    assert literal(5e-324) == "5e-324"
