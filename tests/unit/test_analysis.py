"""Static checks: each fixture notebook yields exactly its finding, on the right cell and line."""

from __future__ import annotations

import ast
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
    "entrypoint_return_unannotated": ("unannotated-entrypoint", "warning", 4, 1, "features"),
    # names the build reads, bound wrongly or not at all: found before training
    "model_never_assigned": ("missing-assignment", "error", 5, None, "model"),
    "reference_never_assigned": ("missing-assignment", "error", 5, None, "X_train"),
    "metrics_never_assigned": ("missing-assignment", "error", 6, None, "metrics"),
    "metrics_is_sklearn_module": ("import-shadows-setting", "error", 2, 1, "metrics"),
    "reference_values": ("reference-not-frame", "error", 2, 7, "X_train"),
    "reference_numpy_split": ("reference-not-frame", "error", 2, 9, "X_train"),
    "package_not_installed": ("package-missing", "error", 2, 3, "seaborn"),
    "learned_unassigned": ("learned-unassigned", "error", 5, 2, "FARE_MEDIAN"),
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
        if not fixture.startswith("cell_id_"):  # those plant a bad id
            assert finding.cell_id == f"{fixture[:20]}-{cell}"
        if line is not None:
            assert f"cell {cell} (id {finding.cell_id}, {finding.role}) line {line}: " in (
                finding.message
            )
    assert report.ok is (severity != "error")


@pytest.mark.parametrize(
    "fixture", ["clean", "comment_roles", "parameter_lifted", "gate_fails", "learned_fare_median"]
)
def test_clean_notebooks_have_no_findings(fixture: str) -> None:
    assert check(CHECK / f"{fixture}.ipynb").findings == []


def test_undefined_name_names_the_defining_cell_and_its_role() -> None:
    (finding,) = check(CHECK / "closure_untagged_name.ipynb").findings
    assert "uses `scale`, which only cell 2 (id " in finding.message
    assert "untagged) defines; tag that cell nb2prod:features, compute it inside the " in (
        finding.message
    )
    assert finding.message.endswith(
        "or list it in nb2prod.learned to lift its value from the training run."
    )


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
        "clean.ipynb: unknown parameter `sead`; did you mean `seed`? The parameters cell "
        "(cell 1 (id clean-1, parameters)) sets seed, threshold."
    )
    assert refused.value.fields["name"] == "sead"
    with pytest.raises(ParameterError) as refused:
        check_params(checked, {"n_estimators": 2})
    assert str(refused.value) == (
        "clean.ipynb: unknown parameter `n_estimators`: the parameters cell "
        "(cell 1 (id clean-1, parameters)) sets seed, threshold."
    )


def test_check_params_says_a_notebook_without_parameters_cell_takes_none() -> None:
    with pytest.raises(ParameterError) as refused:
        check_params(check(CHECK / "no_parameters.ipynb"), {"x": 1})
    assert str(refused.value) == (
        "no_parameters.ipynb: unknown parameter `x`: the notebook has no parameters cell, "
        "so it takes no -p values."
    )


def test_unannotated_entry_point_says_what_is_missing() -> None:
    (only_return,) = check(CHECK / "entrypoint_return_unannotated.ipynb").findings
    assert "its return has no `-> DataFrame[Schema]` annotation; write " in only_return.message
    assert "`def features(df: DataFrame[Raw]) -> DataFrame[Features]`" in only_return.message
    assert "argument" not in only_return.message
    (both,) = check(CHECK / "entrypoint_unannotated.ipynb").findings
    assert "neither its argument `df` nor its return has a `DataFrame[Schema]`" in both.message


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
            ("model = object()\nX_train = None\nfeatures", ["nb2prod:train"]),
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


def analyze_nb(nb):
    from nb2prod.notebook.analysis import analyze

    return [f for f in analyze(nb).findings if f.code != "no-parameters"]


def _notebook(cells: list[tuple[str, list[str]]], settings: dict | None = None):
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
        "metadata": {"nb2prod": settings} if settings else {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return parse(json.dumps(body), Path("inline.ipynb"))


def test_learned_names_resolve_in_lifted_code_and_are_planned() -> None:
    report = check(CHECK / "learned_fare_median.ipynb")
    assert report.findings == []
    assert report.plan.feature_learned == ["FARE_EDGES", "FARE_MEDIAN"]
    assert report.plan.schema_learned == [] and report.plan.feature_params == []
    assert report.plan.lifted_learned == ["FARE_EDGES", "FARE_MEDIAN"]


def test_learned_not_a_list_is_a_bad_setting_and_the_names_stay_undefined() -> None:
    findings = check(CHECK / "learned_not_a_list.ipynb").findings
    assert [(f.code, f.name) for f in findings] == [
        ("bad-setting", "nb2prod.learned"),
        ("undefined-name", "FARE_MEDIAN"),
        ("undefined-name", "FARE_EDGES"),
    ]
    assert "nb2prod.learned must be a list of Python variable names" in findings[0].message


def _learned_copy(tmp_path: Path, statistics: str) -> Path:
    """The learned fixture with its statistics cell replaced."""
    node = json.loads((CHECK / "learned_fare_median.ipynb").read_text())
    node["cells"][3]["source"] = statistics
    path = tmp_path / "learned.ipynb"
    path.write_text(json.dumps(node))
    return path


def test_learned_numpy_values_become_plain_literals(tmp_path: Path) -> None:
    # Given statistics as numpy computes them: a numpy float, an array ending in inf and NaN
    from nb2prod.builder.lift import lift
    from tests.support import train_in_process

    path = _learned_copy(
        tmp_path,
        'FARE_MEDIAN = np.float64(X_train["fare"].median())\n'
        'FARE_EDGES = np.append(np.quantile(X_train["fare"].dropna(), [0.5]), [np.inf, np.nan])',
    )
    checked, training = train_in_process(path, tmp_path / "train")
    # Then the run exported Python source: plain floats, infinity and NaN as float("...")
    median = float(ast.literal_eval(training.learned["FARE_MEDIAN"]))
    assert training.learned["FARE_MEDIAN"] == repr(median)
    assert training.learned["FARE_EDGES"].endswith(', float("inf"), float("nan")]')
    # And the lifted features.py holds them, and they evaluate to the same numbers
    lifted = lift(checked, training, gate=False)
    features = next(g.text for g in lifted.files if g.path == "lifted/features.py")
    assert f"FARE_MEDIAN = {median!r}\n" in features
    assert f"FARE_EDGES = {training.learned['FARE_EDGES']}\n" in features
    edges = eval(training.learned["FARE_EDGES"])  # the source just checked
    assert edges[1] == float("inf") and edges[2] != edges[2] and isinstance(edges[0], float)
    compile(features, "features.py", "exec")
    assert lifted.manifest["learned"] == training.learned


def test_a_learned_value_that_is_no_literal_fails_the_run_naming_it(tmp_path: Path) -> None:
    # A range works in the notebook's np.searchsorted, but is no literal
    from tests.support import train_in_process

    path = _learned_copy(
        tmp_path, 'FARE_MEDIAN = X_train["fare"].median()\nFARE_EDGES = range(0, 90, 30)'
    )
    with pytest.raises(TypeError) as failed:
        train_in_process(path, tmp_path / "train")
    assert str(failed.value).startswith(
        "`FARE_EDGES` (listed in nb2prod.learned) is a range, which cannot be written "
        "into the service as a literal; make it a number, string, bool, None, or a list"
    )


def test_a_changed_learned_value_is_a_new_version(tmp_path: Path) -> None:
    import dataclasses

    from nb2prod.builder.lift import lift
    from tests.support import train_in_process

    checked, training = train_in_process(CHECK / "learned_fare_median.ipynb", tmp_path / "t")
    first = lift(checked, training, gate=False)
    again = lift(checked, training, gate=False)
    moved = dataclasses.replace(training, learned={**training.learned, "FARE_MEDIAN": "1.5"})
    changed = lift(checked, moved, gate=False)
    assert again.version == first.version
    assert changed.version != first.version
    assert changed.manifest["learned"]["FARE_MEDIAN"] == "1.5"


def _pipeline(train: str, untagged: str = "X_train = raw", **meta) -> Path:
    """A small pipeline: untagged data cell, schema, features, train cell as given."""
    cells = [
        ("import pandas as pd\nraw = pd.DataFrame({'a': [1]})\ny = [0]\n" + untagged, []),
        (SCHEMA_CELL, ["nb2prod:schema"]),
        (
            "def features(df: DataFrame[Raw]) -> DataFrame[Raw]:\n    return df",
            ["nb2prod:features"],
        ),
        (train, ["nb2prod:train"]),
    ]
    return _notebook(cells, meta)


@pytest.mark.parametrize(
    "train",
    [
        "model = fit(features(X_train), y)",
        "model, score = fit(features(X_train), y), 1",
        "for model in [fit(features(X_train), y)]:\n    pass",
        "with fit(features(X_train), y) as model:\n    pass",
        "model: object = fit(features(X_train), y)",
        "if (model := fit(features(X_train), y)):\n    pass",
        "def train():\n    global model\n    model = fit(features(X_train), y)\ntrain()",
        "try:\n    model = fit(features(X_train), y)\nexcept ValueError:\n    raise",
        "%run train_helpers.py\nfeatures(X_train)",  # binds names out of sight: no claim
    ],
)
def test_every_form_of_assignment_counts(train: str) -> None:
    codes = [f.code for f in analyze_nb(_pipeline("def fit(X, y):\n    return X\n" + train))]
    assert "missing-assignment" not in codes, codes


def test_an_annotation_alone_assigns_nothing() -> None:
    findings = analyze_nb(_pipeline("model: object\nfeatures(X_train)"))
    assert [(f.code, f.name, f.cell_index, f.cell_id) for f in findings] == [
        ("missing-assignment", "model", 3, "c3")
    ]


def test_a_name_rebound_after_the_import_is_not_shadowed() -> None:
    train = (
        "from sklearn import metrics\nmodel = object()\nfeatures(X_train)\n"
        "metrics = {'accuracy': metrics.accuracy_score([1], [1])}"
    )
    assert analyze_nb(_pipeline(train)) == []


def test_a_reference_made_a_frame_again_is_not_an_array() -> None:
    data = "X_train = raw.values\nX_train = pd.DataFrame(X_train, columns=['a'])"
    assert analyze_nb(_pipeline("model = object()\nfeatures(X_train)", data)) == []


@pytest.mark.parametrize(
    "untagged",
    [
        "try:\n    import seaborn\nexcept ImportError:\n    seaborn = None",
        "%pip install seaborn\nimport seaborn",
        "import helpers_next_to_the_notebook",
    ],
)
def test_imports_that_would_not_fail_are_not_missing_packages(
    untagged: str, tmp_path: Path
) -> None:
    (tmp_path / "helpers_next_to_the_notebook.py").write_text("")
    body = _pipeline("model = object()\nfeatures(X_train)").node
    body["cells"][0]["source"] += "\n" + untagged
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(body))
    assert [f.code for f in check(path).findings if f.code != "no-parameters"] == []


def test_a_skip_cell_may_import_what_is_not_installed() -> None:
    body = _pipeline("model = object()\nfeatures(X_train)").node
    body["cells"].append(
        {
            "cell_type": "code",
            "id": "plot",
            "metadata": {"tags": ["nb2prod:skip"]},
            "source": "import seaborn",
            "outputs": [],
            "execution_count": None,
        }
    )
    assert analyze_nb(parse(json.dumps(body), Path("inline.ipynb"))) == []


def test_check_stays_fast_on_a_fixture_with_a_static_finding() -> None:
    # Not a benchmark: the package-missing lookup must not import what it looks for
    import subprocess
    import sys

    code = (
        "import sys; from nb2prod.notebook.check import check; "
        f"check({str(CHECK / 'package_not_installed.ipynb')!r}); "
        "print(sorted({'numpy', 'pandas', 'sklearn', 'pandera'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_reference_imported_from_a_module_of_the_user_is_no_shadow(tmp_path: Path) -> None:
    # `from sklearn import metrics` is a module; `from prepared import X_train` may be a frame
    (tmp_path / "prepared.py").write_text("X_train = None\n")
    body = _pipeline("model = object()\nfeatures(X_train)", "from prepared import X_train").node
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(body))
    assert [f.code for f in check(path).findings if f.code != "no-parameters"] == []


def test_a_reference_bound_by_a_magic_is_not_reported_missing() -> None:
    nb = _pipeline("model = object()\nfeatures(X_train)", "X_train = %sql SELECT * FROM rides")
    assert analyze_nb(nb) == []
