"""Static checks: each fixture notebook yields exactly its finding, on the right cell and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nb2prod.errors import CheckFailed, ParameterError
from nb2prod.notebook.check import check, check_params
from nb2prod.notebook.read import parse
from tests.support import CHECK

# fixture -> (code, severity, cell index, line, name); every other finding is a failure
EXPECTED = {
    "closure_untagged_name": ("undefined-name", "error", 4, 2, "scale"),
    "closure_unknown_name": ("undefined-name", "error", 4, 2, "clip"),
    "entrypoint_missing": ("missing-entrypoint", "error", 4, None, "features"),
    "entrypoint_two_args": ("bad-entrypoint", "error", 4, 1, "features"),
    "entrypoint_unannotated": ("unannotated-entrypoint", "warning", 4, 1, "features"),
    "train_skips_entrypoint": ("entrypoint-not-called", "warning", 5, None, "features"),
    "magic_in_features": ("magic", "error", 4, 1, None),
    "shell_in_schema": ("magic", "error", 3, 1, None),
    "star_import_in_schema": ("star-import", "error", 3, 2, "*"),
    "unknown_role": ("unknown-role", "error", 6, None, "evalute"),
    "no_parameters": ("no-parameters", "info", None, None, None),
    # a setting only the gate reads, checked before training all the same
    "properties_typo": ("bad-setting", "error", None, None, "nb2prod.properties"),
    "gate_malformed": ("bad-gate", "error", None, None, "accuracy"),
    # settings of the wrong type: found now, not after training ("a cell raised TraitError")
    "timeout_not_a_number": ("bad-setting", "error", None, None, "nb2prod.timeout"),
    "setting_not_a_name": ("bad-setting", "error", None, None, "nb2prod.model"),
    # ids that break nbformat's pattern (a newline would end the lifted marker comment)
    "cell_id_invalid": ("bad-cell-id", "error", 4, None, None),
    "cell_id_repeated": ("bad-cell-id", "error", 5, None, None),
    "entrypoint_defined_twice": ("duplicate-entrypoint", "error", 5, 1, "features"),
    "expression_too_long": ("too-complex", "error", 4, None, None),
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_fixture_produces_exactly_its_finding(fixture: str) -> None:
    # Given a notebook with one planted problem
    report = check(CHECK / f"{fixture}.ipynb")
    # Then exactly that finding is reported, tied to the right cell and line
    code, severity, cell, line, name = EXPECTED[fixture]
    assert [(f.code, f.severity, f.cell_index, f.line, f.name) for f in report.findings] == [
        (code, severity, cell, line, name)
    ]
    finding = report.findings[0]
    assert finding.message.startswith(f"{fixture}.ipynb")
    if cell is not None:
        assert f"cell {cell} (id {finding.cell_id}" in finding.message
    assert report.ok is (severity != "error")


@pytest.mark.parametrize("fixture", ["clean", "comment_roles", "parameter_lifted", "gate_fails"])
def test_clean_notebooks_have_no_findings(fixture: str) -> None:
    assert check(CHECK / f"{fixture}.ipynb").findings == []


def test_undefined_name_names_the_defining_cell_and_its_role() -> None:
    (finding,) = check(CHECK / "closure_untagged_name.ipynb").findings
    assert "uses `scale`, which only cell 2 (id " in finding.message
    assert "untagged) defines; tag that cell nb2prod:features" in finding.message


def test_unknown_role_suggests_the_closest_role() -> None:
    (finding,) = check(CHECK / "unknown_role.ipynb").findings
    assert finding.message.endswith("did you mean nb2prod:evaluate?")


def test_lift_plan_resolves_imports_and_parameters() -> None:
    plan = check(CHECK / "parameter_lifted.ipynb").plan
    assert plan.entrypoint == "features"
    assert (plan.input_schema, plan.output_schema) == ("Raw", "Feats")
    assert plan.feature_params == ["threshold"]  # `seed` is a parameter too, but not lifted
    assert [i.source for i in plan.feature_imports] == [
        "import pandas as pd",
        "from pandera.typing import DataFrame",
    ]
    assert plan.from_schema == ["Feats", "Raw"]
    assert [i.source for i in plan.schema_imports] == []  # schema cell imports for itself


def test_comment_roles_read_like_tags() -> None:
    by_tags = check(CHECK / "clean.ipynb")
    by_comments = check(CHECK / "comment_roles.ipynb")
    assert [(c.index, c.role) for c in by_tags.notebook.cells] == [
        (c.index, c.role) for c in by_comments.notebook.cells
    ]
    assert by_comments.plan.parameters == ["seed", "threshold"]


def test_an_invalid_cell_id_is_named_with_its_fix_and_stops_the_build(tmp_path: Path) -> None:
    # Given a features cell whose id holds a newline and code
    path = CHECK / "cell_id_invalid.ipynb"
    # When it is checked
    (finding,) = check(path).findings
    # Then the finding names the cell by index, quotes the id, and says how to fix it
    assert finding.cell_id == "index-4"
    assert "cell 4 (id index-4, nb2prod:features): has an invalid cell id 'f\\nimport os'" in (
        finding.message
    )
    assert "open and save the notebook in JupyterLab (nbformat's normalization" in finding.message
    # And a build stops at check, before any kernel starts
    from nb2prod.builder.pipeline import build

    with pytest.raises(CheckFailed, match="invalid cell id"):
        build(path, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_second_definition_of_the_entry_point_names_the_first() -> None:
    (finding,) = check(CHECK / "entrypoint_defined_twice.ipynb").findings
    assert "defines the entry point `features` again, after cell 4 (id " in finding.message


def test_check_params_refuses_a_name_the_parameters_cell_does_not_set() -> None:
    checked = check(CHECK / "clean.ipynb")
    check_params(checked, {"seed": 1, "threshold": 0.2})
    with pytest.raises(ParameterError) as refused:
        check_params(checked, {"seed": 1, "sead": 2})
    assert str(refused.value) == (
        "clean.ipynb: unknown parameter `sead`, its parameters cell cell 1 (id clean-1, "
        "parameters) does not set it; known parameters: seed, threshold."
    )
    assert refused.value.fields["name"] == "sead"


SCHEMA_CELL = (
    "import pandera.pandas as pa\nfrom pandera.typing import DataFrame, Series\n"
    "class Raw(pa.DataFrameModel):\n    a: Series[int]"
)
FEATURE_CELL = (
    "import math\nLIMIT = 3\n"
    "def helper(v):\n    return [math.floor(x) for x in v if x < LIMIT]\n"
    "def features(df: DataFrame[Raw]) -> DataFrame[Raw]:\n"
    "    return df.assign(a=helper(df['a']))"
)


def test_names_used_only_inside_functions_or_comprehensions_resolve() -> None:
    nb = _notebook(
        [
            (SCHEMA_CELL, ["nb2prod:schema"]),
            (FEATURE_CELL, ["nb2prod:features"]),
            ("model = object()\nfeatures", ["nb2prod:train"]),
            ("n = 1", ["parameters"]),
        ]
    )
    from nb2prod.notebook.analysis import analyze

    report = analyze(nb)
    assert report.findings == [], [f.message for f in report.findings]


def test_no_features_cell_sends_the_validated_input_to_the_model() -> None:
    report = check(CHECK.parent / "contract" / "wine.ipynb")
    assert report.ok and report.findings == []
    assert report.plan.entrypoint is None
    assert report.plan.input_schema == "WineSample"


def test_check_json_is_machine_readable() -> None:
    data = json.loads(json.dumps(check(CHECK / "unknown_role.ipynb").to_dict()))
    assert data["ok"] is False
    assert data["counts"] == {"error": 1, "warning": 0, "info": 0}
    assert data["findings"][0]["code"] == "unknown-role"
    assert [p["role"] for p in data["pipeline"]] == ["parameters", "schema", "features", "train"]


def test_check_imports_nothing_heavy() -> None:
    # Not a timing assert: `check` stays well under 2 s because it never loads the heavy stack.
    import subprocess
    import sys

    code = (
        "import sys; from nb2prod.notebook.check import check; "
        f"check({str(CHECK / 'clean.ipynb')!r}); "
        "heavy = {'papermill', 'bentoml', 'nbformat', 'pandas', 'jupyter_client'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _notebook(cells: list[tuple[str, list[str]]]):
    body = {
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {"tags": tags},
                "source": src,
                "outputs": [],
                "execution_count": None,
            }
            for i, (src, tags) in enumerate(cells)
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return parse(json.dumps(body), Path("inline.ipynb"))
