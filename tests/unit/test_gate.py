"""The property gate without a kernel: planted defects, trained in-process, fail it by name.

Each fixture notebook plants one defect in its feature code. It is trained in this process
(the cells papermill would run, with ``exec``), lifted as a build lifts it, and gated by the
real generated tests in a pytest subprocess. ``tests/e2e/test_gate.py`` keeps one defect on
the full ``nb2prod build`` path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nb2prod.builder.pipeline import run_gate
from nb2prod.cli import app
from nb2prod.errors import PropertyFailed
from nb2prod.gate.properties import BY_KEY
from nb2prod.gate.run import TestRun, failure_report
from tests.support import PROPS, assert_names_its_property, lift_in_process

# fixture notebook -> the property its planted defect breaks
DEFECTS = {
    "null_crash": "no_crash",
    "inplace_write": "input_untouched",
    "dropna_rows": "rows_kept",
    "unseeded_noise": "deterministic",
    "batch_mean": "row_independence",
    "bike_rentals_batch_stat": "row_independence",  # the notebook no one tuned the generator for
    # fee / visits with visits only `gt=0`: infinite at the schema's edge, never in training
    "ratio_overflow": "output_contract",
    # a .loc write through `.str.startswith` on a nullable column: pandas refuses the NaN mask
    "loc_null_mask": "no_crash",
}
# what the report says happened, where a defect needs more than the property's name
WHAT_HAPPENED = {
    "ratio_overflow": "AssertionError: the entry point gave an infinite feature `fee_per_visit`",
    "loc_null_mask": "ValueError: Cannot mask with non-boolean array containing NA / NaN values",
}


@pytest.mark.parametrize(("fixture", "prop"), DEFECTS.items())
def test_a_planted_defect_fails_the_gate_naming_its_property(
    fixture: str, prop: str, tmp_path: Path
) -> None:
    # Given the fixture trained and lifted, as a build has it before its test stage
    work = tmp_path / f".{fixture}-work"
    _, training = lift_in_process(PROPS / f"{fixture}.ipynb", work)
    keep = tmp_path / f"{fixture}.failed"
    # When the gate runs
    with pytest.raises(PropertyFailed) as failed:
        run_gate(work, training.model_file, f"{fixture}.ipynb", keep)
    # Then it names the property, the entry point's cell and a falsifying frame, from the
    # build kept where the error says
    assert assert_names_its_property(failed.value, fixture, prop) == keep
    report = failed.value.fields["report"]
    assert f"what happened: {WHAT_HAPPENED.get(fixture, '')}" in report
    # a frame with rows: the gate never calls the entry point on an empty one, nor the service
    assert int(report.split("smallest falsifying frame of ", 1)[1].split(" row(s)")[0]) >= 1
    assert not work.exists() and str(work) not in failed.value.fields["report"]
    assert not (keep / "src" / ".hypothesis").exists()  # Hypothesis's cache stays out of src/


def test_loc_writes_that_only_an_empty_frame_breaks_pass_the_gate(tmp_path: Path) -> None:
    # Given an entry point with `.loc` writes on a copy, one of which (a new column set through
    # a mask) pandas refuses on a frame with no rows, and the service, which answers an empty
    # request without calling the entry point
    work = tmp_path / ".loc_writes-work"
    _, training = lift_in_process(PROPS / "loc_writes.ipynb", work)
    service = (work / "src" / "service.py").read_text()
    assert "if frame.empty:\n            return Predictions(predictions=[]" in service
    with pytest.raises(ValueError, match="cannot set a frame with no defined index"):
        _entrypoint(work / "src")(_member_rows(0))
    # When the gate runs
    run_gate(work, training.model_file, "loc_writes.ipynb", tmp_path / "loc_writes.failed")
    # Then it passes, as the service serves every non-empty frame correctly
    assert not (tmp_path / "loc_writes.failed").exists()
    out = _entrypoint(work / "src")(_member_rows(3))
    assert list(out["minor"]) == [1, 0, 0] and list(out["account_balance"]) == [0.0, 5.0, 0.0]


def _member_rows(n: int):
    import pandas as pd

    rows = {"age": [16, 40, 70], "visits_per_month": [1.0, None, 3.0]}
    rows |= {"account_balance": [-20.0, 5.0, 0.0], "plan": ["basic", "plus", None]}
    return pd.DataFrame({k: v[:n] for k, v in rows.items()}).astype(
        {"age": "int64", "visits_per_month": "float64", "account_balance": "float64"}
    )


def _entrypoint(src: Path):
    from nb2prod.bento.locate import _manifest, load_pipeline

    return load_pipeline(src, _manifest(src)).entrypoint


def test_nb2prod_test_replays_a_kept_build_and_runs_every_test(tmp_path: Path) -> None:
    # Given a gate failure kept on disk
    work, keep = tmp_path / ".work", tmp_path / "dropna_rows.failed"
    _, training = lift_in_process(PROPS / "dropna_rows.ipynb", work)
    with pytest.raises(PropertyFailed) as failed:
        run_gate(work, training.model_file, "dropna_rows.ipynb", keep)
    seed = failed.value.fields["seed"]
    # When `nb2prod test` reruns it with the reported seed
    result = CliRunner().invoke(app, ["test", str(keep), "--seed", str(seed)])
    # Then the same property fails, and every other test ran too (no stop at the first)
    assert result.exit_code == 1
    assert "property `rows kept` failed" in result.stderr
    assert f"(seed {seed})" in result.stderr
    assert "The gate stops at the first failed test" not in result.stderr


def test_nb2prod_test_names_a_target_that_is_no_bento(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["test", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path} is not a build directory: it has no nb2prod.json." in result.stderr


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
    text = failure_report(run, entry="`features` in gym.ipynb cell 9", model_file=None)
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
    text = failure_report(run, entry="features", model_file=Path("/m.pkl"))
    assert "what happened: AssertionError: 2 rows for 3\n" in text
    assert "assert 2 == 3" not in text
    assert "NB2PROD_MODEL_FILE=/m.pkl " in text


def test_a_relative_build_directory_opens_with_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nb2prod.bento.locate import open_bento

    # Given a build directory named relative to the caller's folder
    build = tmp_path / "bentos" / "gym-abc123"
    (build / "src").mkdir(parents=True)
    (build / "src" / "nb2prod.json").write_text('{"tag": "gym:abc123"}')
    (build / "train").mkdir()
    (build / "train" / "model.pkl").write_bytes(b"model")
    monkeypatch.chdir(tmp_path)
    # When it is opened
    with open_bento("bentos/gym-abc123") as bento:
        # Then its paths hold from any folder, the tests' src/ included
        assert bento.src == build / "src" and bento.model_file == build / "train" / "model.pkl"


def test_a_missing_model_file_is_named_before_any_test_runs(tmp_path: Path) -> None:
    from nb2prod.gate.run import run_tests

    (tmp_path / "src").mkdir()
    with pytest.raises(PropertyFailed) as failed:
        run_tests(tmp_path / "src", tmp_path / "train" / "model.pkl", notebook="gym.ipynb")
    assert str(failed.value) == (
        "gym.ipynb: the generated tests cannot run, because the model file "
        f"{tmp_path / 'train' / 'model.pkl'} does not exist."
    )


def test_a_model_that_did_not_load_is_said_so_not_blamed_on_parity(tmp_path: Path) -> None:
    from nb2prod.gate.run import failure

    # Given a run where the parity test (first in the report) and a property met no model
    error = "ModelNotLoaded: cannot load the model from NB2PROD_MODEL_FILE=m.pkl (OSError: gone)"
    run = fake_run(tmp_path / "src", error)
    run.results.insert(0, {**run.results[0], "test": "test_lifted_pipeline_reproduces_it"})
    # When its failure is worded
    error_ = failure(run, notebook="gym.ipynb")
    # Then the sentence says the model did not load, and names neither parity nor a property
    assert str(error_) == (
        "gym.ipynb: the generated tests could not load the trained model, so the tests that "
        "need it did not run: cannot load the model from NB2PROD_MODEL_FILE=m.pkl "
        "(OSError: gone)."
    )
    assert "report" not in error_.fields


def test_the_tests_load_hypothesis_alone_and_write_no_bytecode(tmp_path: Path) -> None:
    import shutil

    from nb2prod.gate.run import run_tests
    from nb2prod.serving import conftest

    # Given a src/ whose one test looks at the interpreter it runs in
    src = tmp_path / "src"
    (src / "tests").mkdir(parents=True)
    shutil.copy(conftest.__file__, src / "tests" / "conftest.py")
    (src / "tests" / "test_seen.py").write_text(
        "import sys\n\n"
        "def test_seen():\n"
        '    """What the gate gives its tests."""\n'
        "    assert sys.flags.dont_write_bytecode\n"
        "    assert '_hypothesis_pytestplugin' in sys.modules\n"
        "    assert not {'schemathesis', 'faker', 'anyio', 'typeguard'} & set(sys.modules)\n"
    )
    # When the gate runs them
    run = run_tests(src, seed=1)
    # Then only Hypothesis's plugin is loaded, and src/ keeps no bytecode
    assert run.ok and run.passed == ["test_seen"], run.output
    assert list(src.rglob("__pycache__")) == []
