"""The papermill training run: skip cells out, parameters in, failures named by cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nb2prod.builder.training import parse_params, train
from nb2prod.errors import ParameterError, TrainingError
from tests.support import FIXTURES

CHECK = FIXTURES / "check"


def test_parse_params_reads_yaml_scalars_and_files(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("seed: 3\nname: churn\n")
    params = parse_params([("threshold", "0.25"), ("flag", "true"), ("seed", "9")], file)
    assert params == {"seed": 9, "name": "churn", "threshold": 0.25, "flag": True}


def test_bad_params_file_is_a_parameter_error(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("- a\n- b\n")
    with pytest.raises(ParameterError, match="must hold a mapping"):
        parse_params(None, file)


@pytest.mark.e2e
def test_training_run_exports_model_metrics_and_reference(tmp_path: Path) -> None:
    # Given the comment-role fixture (parameters marked by `#| nb2prod: parameters`)
    result = train(CHECK / "comment_roles.ipynb", {"threshold": 0.75}, out_dir=tmp_path)
    # Then papermill injected the parameter, and the run left what the build needs
    executed = json.loads(result.executed.read_text())
    injected = [
        c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    assert "threshold = 0.75" in "".join(injected[0]["source"])
    assert result.params["threshold"] == "0.75"
    assert set(result.metrics) == {"accuracy"} and 0.5 < result.metrics["accuracy"] <= 1.0
    assert result.model_file.exists() and result.reference_rows == 200
    assert result.has_proba and result.classes == [0, 1]


@pytest.mark.e2e
def test_skip_cells_never_run(tmp_path: Path) -> None:
    # The wine notebook's skip cell imports seaborn (not installed) and raises.
    result = train(FIXTURES / "contract" / "wine.ipynb", out_dir=tmp_path)
    sources = "".join(
        "".join(c["source"]) for c in json.loads(result.executed.read_text())["cells"]
    )
    assert "exploration cell" not in sources
    assert result.metrics["accuracy"] >= 0.85


@pytest.mark.e2e
def test_failing_cell_is_named_with_the_executed_notebook(tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as info:
        train(CHECK / "train_raises.ipynb", out_dir=tmp_path)
    err = info.value
    assert str(err).startswith(
        "train_raises.ipynb: cell 5 (id train_raises-5, nb2prod:train) raised ValueError"
    )
    assert "the training data has no positive class" in str(err)
    assert err.fields["cell_index"] == 5 and err.fields["executed"].endswith("executed.ipynb")
    assert Path(err.fields["executed"]).exists()
