"""Planning the generated property tests: settings, skips, and how each column is drawn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nb2prod.builder.lift import lift
from nb2prod.errors import NotebookError
from nb2prod.gate.properties import (
    DEFAULT_EXAMPLES,
    DEFAULT_MAX_ROWS,
    PROPERTIES,
    PropertySettings,
    read_settings,
)
from nb2prod.gate.strategies import plan_tests
from nb2prod.notebook.check import check
from nb2prod.notebook.read import parse
from tests.support import (
    CHECK,
    fake_training,
)

CLEAN = CHECK / "clean.ipynb"

SCHEMA = """
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class Raw(pa.DataFrameModel):
    share: Series[float] = pa.Field(ge=0, le=1)
    amount: Series[float] = pa.Field(gt=0)
    count: Series[int] = pa.Field(ge=1)
    colour: Series[str] = pa.Field(isin=["red", "blue"], nullable=True)
    size: Series[pd.CategoricalDtype]
    score: Series[float]

    @pa.check("score", name="multiple_of_five")
    def multiple_of_five(cls, score: Series[float]) -> Series[bool]:
        return score % 5 == 0
"""


def with_properties(tmp_path: Path, properties: dict) -> Path:
    node = json.loads(CLEAN.read_text())
    node["metadata"]["nb2prod"] = {"properties": properties}
    path = tmp_path / "clean.ipynb"
    path.write_text(json.dumps(node))
    return path


def settings_of(properties: dict) -> PropertySettings:
    node = json.loads(CLEAN.read_text())
    node["metadata"]["nb2prod"] = {"properties": properties}
    return read_settings(parse(json.dumps(node), Path("clean.ipynb")))


def test_defaults_when_the_notebook_sets_nothing() -> None:
    assert settings_of({}) == PropertySettings(DEFAULT_EXAMPLES, DEFAULT_MAX_ROWS, {})


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"exampels": 5}, "unknown key(s) exampels; known keys are examples, max_rows, skip"),
        ({"examples": 0}, "examples must be a whole number of at least 1, not 0"),
        ({"examples": True}, "examples must be a whole number of at least 1, not True"),
        ({"max_rows": 1}, "max_rows must be a whole number of at least 2"),
        ({"skip": ["deterministic"]}, "skip must map property names to reasons"),
        ({"skip": {"row_independance": "x"}}, "(did you mean row_independence?)"),
        ({"skip": {"deterministic": "  "}}, "skip.deterministic needs a reason"),
    ],
)
def test_bad_settings_are_named(properties: dict, message: str) -> None:
    with pytest.raises(NotebookError) as failed:
        settings_of(properties)
    assert message in str(failed.value)
    assert str(failed.value).startswith("clean.ipynb: notebook setting nb2prod.properties")


def test_check_names_a_bad_setting_before_any_training(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nb2prod.cli import app

    notebook = with_properties(tmp_path, {"skip": {"determinstic": "seeded elsewhere"}})
    result = CliRunner().invoke(app, ["check", str(notebook)])
    # a finding like any other: on the findings list, and the check fails
    assert result.exit_code == 1
    assert "error bad-setting clean.ipynb: notebook setting nb2prod.properties.skip names" in (
        result.stdout
    )
    assert "`determinstic`" in result.stdout and "(did you mean deterministic?)" in result.stdout
    assert "Traceback" not in result.output


def reference(tmp_path: Path) -> Path:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "share": [0.1, 0.9, 0.5],
            "amount": [12.5, 80.0, 33.0],
            "count": [3, 1, 7],
            "colour": ["red", None, "blue"],
            "size": pd.Categorical(["S", "M", "S"]),
            "score": [5.0, 20.0, 15.0],
            "note": ["a", "b", None],  # in the training data, not in the schema
        }
    )
    frame.to_parquet(tmp_path / "reference.parquet", index=False)
    return tmp_path / "reference.parquet"


def test_each_column_is_drawn_by_pandera_or_from_the_training_data(tmp_path: Path) -> None:
    planned = plan_tests(check(CLEAN), reference(tmp_path), SCHEMA)
    columns = {c["name"]: c for c in planned.context["columns"]}
    assert columns["share"]["source"] == "pandera"
    assert columns["share"]["why"] == (
        "Pandera, from the schema (float64, >= 0, <= 1); its bounds 0.0 and 1.0 mixed in"
    )
    # an open side would give 1e307 and friends: the training data's range instead
    assert (columns["amount"]["source"], columns["amount"]["low"]) == ("range", 12.5)
    assert columns["amount"]["high"] == 80.0
    assert (columns["count"]["low"], columns["count"]["high"]) == (1, 7)
    assert columns["colour"]["nullable"] and columns["colour"]["null"] == "None"
    assert not columns["share"]["nullable"]
    # Pandera cannot draw a category dtype or a custom check: values seen in training
    assert columns["size"]["source"] == "values" and columns["size"]["coerce"]
    assert columns["size"]["observed"] == ["'M', 'S',"]
    assert "custom check multiple_of_five" in columns["score"]["why"]
    assert columns["note"]["source"] == "values" and columns["note"]["nullable"]
    assert planned.context["filter"] == ["custom check multiple_of_five on score"]
    assert planned.manifest["columns"]["amount"].startswith(
        "the schema (float64, > 0) leaves the range open: the training data's range; "
    )


def test_the_schemas_bounds_and_an_open_sides_extremes_are_mixed_in(tmp_path: Path) -> None:
    planned = plan_tests(check(CLEAN), reference(tmp_path), SCHEMA)
    bounds, extremes = planned.context["bounds"], planned.context["extremes"]
    # closed on both sides: its own bounds, exactly; no extremes
    assert bounds["share"] == [0.0, 1.0] and "share" not in extremes
    # gt=0: the nearest float above 0; the open side: extreme values the schema accepts
    assert bounds["amount"] == [5e-324]
    assert extremes["amount"] == [1e-300, 1e300, sys.float_info.max]
    assert (bounds["count"], extremes["count"]) == ([1], [2**63 - 1])
    # drawn from a set, or from training values (custom check, category): nothing mixed in
    assert not {"colour", "size", "score", "note"} & (set(bounds) | set(extremes))
    # the manifest says so, in words
    why = planned.manifest["columns"]["amount"]
    assert why.endswith(
        "; its bound 5e-324 mixed in; in the output contract test also the extreme values "
        "1e-300, 1e+300 and 1.7976931348623157e+308"
    )


EDGES = """
import numpy as np
import pandera.pandas as pa
from pandera.typing import Series


class Raw(pa.DataFrameModel):
    share: Series[float] = pa.Field(in_range={"min_value": 0, "max_value": 1, "include_max": False})
    visits: Series[int] = pa.Field(gt=2.5, lt=7.5)
    level: Series[float] = pa.Field(ge=0, le=5, ne=0)
    free: Series[float]
    small: Series[np.float32] = pa.Field(ge=0)
"""


def test_bounds_are_the_values_each_check_lets_through(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {"share": [0.5], "visits": [4], "level": [1.0], "free": [0.0], "small": [1.0]}
    )
    frame.astype({"small": "float32"}).to_parquet(tmp_path / "reference.parquet")
    planned = plan_tests(check(CLEAN), tmp_path / "reference.parquet", EDGES)
    bounds, extremes = planned.context["bounds"], planned.context["extremes"]
    assert bounds["share"] == [0.0, 1.0 - 2**-53]  # include_max=False: just below 1
    assert bounds["visits"] == [3, 7]  # whole numbers inside > 2.5, < 7.5
    assert bounds["level"] == [5.0]  # 0 is a bound, but the column also says != 0
    top = sys.float_info.max
    assert extremes["free"] == [-top, -1e300, -1e-300, 0.0, 1e-300, 1e300, top]
    assert extremes["small"] == [float(np.finfo(np.float32).max)]  # 1e300 is no float32


def test_the_entry_points_cell_is_named(tmp_path: Path) -> None:
    report = check(CLEAN)
    cell = report.notebook.with_role("features")[0]
    planned = plan_tests(report, reference(tmp_path), SCHEMA)
    assert planned.context["entrypoint_cell"] == f"cell {cell.index} (id {cell.id})"
    assert planned.manifest["entrypoint_cell"] == {"index": cell.index, "id": cell.id}


def test_a_skip_is_marked_in_the_test_file_and_recorded_in_the_manifest(tmp_path: Path) -> None:
    reason = "the model samples on purpose"
    notebook = with_properties(tmp_path, {"examples": 7, "skip": {"deterministic": reason}})
    lifted = lift(check(notebook), fake_training(tmp_path / "train"))
    text = next(g.text for g in lifted.files if g.path == "tests/test_properties.py")
    marker = f'@pytest.mark.skip(reason="skipped in the notebook settings: {reason}")'
    assert (
        f"{marker}\n@PROPERTY_SETTINGS\n@given(frame=input_frames(min_rows=1))\ndef test_deterministic("
        in text
    )
    assert text.count("@pytest.mark.skip(") == 1
    assert "max_examples=7," in text
    props = lifted.manifest["properties"]
    assert props["skipped"] == {"deterministic": reason}
    assert "test_deterministic" not in props["tests"]
    assert len(props["tests"]) == len(PROPERTIES) - 1


def test_the_gate_setting_changes_the_version(tmp_path: Path) -> None:
    report = check(CLEAN)
    gated = lift(report, fake_training(tmp_path / "a"))
    ungated = lift(report, fake_training(tmp_path / "b"), gate=False)
    assert ungated.manifest["properties"]["gate"] is False
    assert gated.version != ungated.version


# Draws frames from a generated test file, with and without extremes; prints the x values.
DRAW = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from hypothesis import HealthCheck, given, settings
import test_properties as generated

seen = {}
for extremes in (False, True):
    values = seen[str(extremes)] = set()

    @settings(max_examples=40, database=None, suppress_health_check=list(HealthCheck))
    @given(generated.input_frames(min_rows=1, extremes=extremes))
    def draw(frame):
        values.update(frame["x"].tolist())

    draw()
print(json.dumps({k: sorted(v) for k, v in seen.items()}))
"""


def test_the_generated_tests_draw_bounds_everywhere_and_extremes_only_for_the_model(
    tmp_path: Path,
) -> None:
    import subprocess

    from nb2prod.builder.codegen import write

    # Given the clean fixture with an open upper side on x (its training data: -1.25 to 2.0)
    node = json.loads(CLEAN.read_text())
    for cell in node["cells"]:
        text = "".join(cell["source"])
        cell["source"] = text.replace("pa.Field(ge=-100, le=100)", "pa.Field(ge=-100)")
    notebook = tmp_path / "clean.ipynb"
    notebook.write_text(json.dumps(node))
    lifted = lift(check(notebook), fake_training(tmp_path / "train"))
    write(lifted.files, tmp_path / "src")
    # When its generated strategies draw frames
    proc = subprocess.run(
        [sys.executable, "-c", DRAW, str(tmp_path / "src")],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(proc.stdout)
    regular, extreme = seen["False"], seen["True"]
    # Then every test draws the schema's own bound, inside the training range otherwise...
    assert -100.0 in regular
    assert all(v == -100.0 or -1.25 <= v <= 2.0 for v in regular), regular
    # ...and only the output contract test (extremes=True) also draws extreme values
    assert {-1e-300, 1e-300, 1e300, sys.float_info.max} & set(extreme), extreme
