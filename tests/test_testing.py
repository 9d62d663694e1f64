"""The property gate on real builds: planted defects fail it by name, clean notebooks pass it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nb2prod.build import build
from nb2prod.cli import app
from nb2prod.errors import PropertyFailed
from nb2prod.notebook import read
from nb2prod.properties import BY_KEY, PROPERTIES
from nb2prod.testing import TestRun, render

PROPS = Path(__file__).parent / "fixtures" / "properties"

# fixture notebook -> the property its planted defect breaks
DEFECTS = {
    "null_crash": "no_crash",
    "inplace_write": "input_untouched",
    "dropna_rows": "rows_kept",
    "unseeded_noise": "deterministic",
    "batch_mean": "row_independence",
    "bike_rentals_batch_stat": "row_independence",  # the notebook no one tuned the generator for
}


def entry_cell(name: str) -> str:
    cell = read(PROPS / f"{name}.ipynb").with_role("features")[0]
    return f"cell {cell.index} (id {cell.id})"


@pytest.mark.e2e
@pytest.mark.parametrize(("fixture", "prop"), DEFECTS.items())
def test_a_planted_defect_fails_the_build_naming_its_property(
    fixture: str, prop: str, tmp_path: Path
) -> None:
    with pytest.raises(PropertyFailed) as failed:
        build(PROPS / f"{fixture}.ipynb", out_dir=tmp_path)
    error = failed.value
    assert error.fields["property"] == prop
    assert f"property `{BY_KEY[prop].words}` failed" in str(error)
    assert entry_cell(fixture) in str(error)
    report = error.fields["report"]
    assert report.startswith(f"✗ property failed: {BY_KEY[prop].words}\n")
    frame = report.split("smallest falsifying frame of ", 1)[1]
    assert "visits_per_month" in frame or "temperature_c" in frame  # a table with the columns
    assert f"--hypothesis-seed={error.fields['seed']}" in report
    assert "@reproduce_failure(" in report
    # the failed build is kept where the report says, so the command in it replays the failure
    kept = Path(error.fields["kept"])
    assert (kept / "src" / "tests" / "test_properties.py").is_file()
    assert str(kept) in report and ".tmp" not in report
    assert not list(tmp_path.glob("*.bento"))


@pytest.mark.e2e
def test_the_untuned_contract_notebook_passes_and_ships_its_tests(tmp_path: Path) -> None:
    import bentoml

    result = build(PROPS / "bike_rentals.ipynb", out_dir=tmp_path)
    shipped = Path(bentoml.get(result.tag).path) / "src" / "tests"
    assert {"test_properties.py", "conftest.py"} <= {p.name for p in shipped.iterdir()}
    manifest = json.loads((result.build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["properties"]["gate"] is True
    assert manifest["properties"]["tests"] == [p.test for p in PROPERTIES]
    assert "custom check" in manifest["properties"]["columns"]["humidity"]
    assert "training data's range" in manifest["properties"]["columns"]["windspeed"]


@pytest.mark.e2e
@pytest.mark.parametrize("example", ["churn", "diabetes"])
def test_the_examples_pass_every_property_and_ship_the_tests(
    example: str, request: pytest.FixtureRequest
) -> None:
    import bentoml

    built = request.getfixturevalue(example)
    assert built.manifest["properties"]["gate"] is True
    assert built.manifest["properties"]["skipped"] == {}
    src = Path(bentoml.get(built.tag).path) / "src"
    text = (src / "tests" / "test_properties.py").read_text()
    for prop in PROPERTIES:
        assert f"def {prop.test}(" in text
        assert prop.doc.split(":")[0] in text


@pytest.mark.e2e
def test_nb2prod_test_reruns_a_stored_bentos_tests(churn) -> None:
    result = CliRunner().invoke(app, ["test", churn.tag, "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "passed: 8 generated test(s)" in result.output
    assert "(seed 7)" in result.output


@pytest.mark.e2e
def test_no_gate_builds_a_defective_notebook_and_says_so(tmp_path: Path) -> None:
    result = build(PROPS / "null_crash.ipynb", out_dir=tmp_path, gate=False)
    manifest = json.loads((result.build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["properties"]["gate"] is False
    assert result.bento_path.exists()


def fake_run(src: Path, error: str = "AssertionError: 0 rows for 1") -> TestRun:
    lifted = src / "lifted"
    lifted.mkdir(parents=True)
    (lifted / "features.py").write_text(
        "# header\n\n\n# %% gym.ipynb · cell 9 (abc123)\n# fmt: off\n"
        "def features(df):\n    return df.dropna()\n# fmt: on\n"
    )
    failure = {
        "test": "test_rows_kept",
        "doc": BY_KEY["rows_kept"].doc,
        "outcome": "failed",
        "when": "call",
        "error": error,
        "frame": "input frame of 1 row(s):\n   visits\n0     NaN",
        "reproduce": "@reproduce_failure('6.170.15', b'AXic')",
        "lifted": [{"file": str(lifted / "features.py"), "line": 7}],
    }
    echo = {**failure, "test": "test_output_contract", "doc": BY_KEY["output_contract"].doc}
    return TestRun(src, 42, [echo, failure], skipped={"deterministic": "it samples on purpose"})


def test_the_report_leads_with_the_first_property_in_diagnosis_order(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "src")
    text = render(
        run, notebook="gym.ipynb", entry="`features` in gym.ipynb cell 9", model_file=None
    )
    lines = text.splitlines()
    assert lines[0] == "✗ property failed: rows kept"
    assert "  raised in gym.ipynb cell 9 (id abc123), line 2: return df.dropna()" in lines
    assert "  smallest falsifying frame of 1 row(s):" in lines
    assert "    0     NaN" in lines
    assert "test_properties.py::test_rows_kept' --hypothesis-seed=42" in text
    assert "✗ also failed: output contract, with the same error" in lines
    assert lines[-1] == "- skipped: deterministic (it samples on purpose)"


def test_the_report_drops_pytests_assert_echo(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "src", "AssertionError: 2 rows for 3\nassert 2 == 3\n +  where ...")
    text = render(run, notebook="gym.ipynb", entry="features", model_file=Path("/m.pkl"))
    assert "what happened: AssertionError: 2 rows for 3\n" in text
    assert "assert 2 == 3" not in text
    assert "NB2PROD_MODEL_FILE=/m.pkl " in text
