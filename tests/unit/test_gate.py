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
}
# what the report says happened, where a defect needs more than the property's name
WHAT_HAPPENED = {
    "ratio_overflow": "AssertionError: the entry point gave an infinite feature `fee_per_visit`",
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
    assert f"what happened: {WHAT_HAPPENED.get(fixture, '')}" in failed.value.fields["report"]
    assert not work.exists() and str(work) not in failed.value.fields["report"]
    assert not (keep / "src" / ".hypothesis").exists()  # Hypothesis's cache stays out of src/


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
