"""The property gate on real builds: one planted defect fails ``nb2prod build`` by name, clean
notebooks pass it and ship their tests. The other defects are in ``tests/unit/test_gate.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nb2prod.builder.pipeline import build
from nb2prod.cli import app
from nb2prod.errors import PropertyFailed
from nb2prod.gate.properties import PROPERTIES
from tests.support import PROPS, assert_names_its_property

pytestmark = pytest.mark.e2e


def test_a_planted_defect_fails_the_build_naming_its_property(tmp_path: Path) -> None:
    with pytest.raises(PropertyFailed) as failed:
        build(PROPS / "bike_rentals_batch_stat.ipynb", out_dir=tmp_path)
    kept = assert_names_its_property(failed.value, "bike_rentals_batch_stat", "row_independence")
    # the failed build is kept beside the bentos, not in the temporary work directory
    assert kept == tmp_path / "bike_rentals_batch_stat.failed"
    assert ".tmp" not in failed.value.fields["report"]
    assert not list(tmp_path.glob("*.bento"))


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


def test_nb2prod_test_reruns_a_stored_bentos_tests(churn) -> None:
    result = CliRunner().invoke(app, ["test", churn.tag, "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "passed: 8 generated test(s)" in result.output
    assert "(seed 7)" in result.output


def test_nb2prod_test_takes_a_build_directory_relative_to_another_folder(
    churn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the build directory named from its grandparent, as `nb2prod test bentos/<dir>` is
    build_dir = churn.result.build_dir
    monkeypatch.chdir(build_dir.parent.parent)
    relative = f"{build_dir.parent.name}/{build_dir.name}"
    # When its tests run (in src/, with the model from train/)
    result = CliRunner().invoke(app, ["test", relative, "--seed", "3"])
    # Then all pass, parity included
    assert result.exit_code == 0, result.output
    assert "passed: 8 generated test(s)" in result.output


def test_no_gate_builds_a_defective_notebook_and_says_so(tmp_path: Path) -> None:
    result = build(PROPS / "null_crash.ipynb", out_dir=tmp_path, gate=False)
    manifest = json.loads((result.build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["properties"]["gate"] is False
    assert result.bento_path.exists()
