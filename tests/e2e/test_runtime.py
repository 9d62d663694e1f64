"""End to end: a model that converts exactly serves compiled; one that does not serves the pickle.

Either way the served answers equal the notebook's own model (the pickle) on its rows.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support import FIXTURES, Built, records, serve

pytestmark = pytest.mark.e2e


def _pickle_answers(built: Built, rows: int) -> tuple[list, dict[str, Any], Any]:
    """The rows as JSON, and the notebook's pickled model on their lifted features."""
    from nb2prod.bento.locate import load_pipeline

    reference = built.reference().head(rows)
    pipeline = load_pipeline(built.src, built.manifest)
    frame = pipeline.input_schema.validate(reference.copy())
    features = pipeline.entrypoint(frame) if pipeline.entrypoint else frame
    with open(built.result.build_dir / "train" / "model.pkl", "rb") as fh:
        model = pickle.load(fh)
    expected = {"predict": model.predict(features), "predict_proba": model.predict_proba(features)}
    return records(reference), expected, features


def _served(base: str, rows: list) -> tuple[list, list]:
    predict = httpx.post(f"{base}/predict", json={"rows": rows}, timeout=60)
    proba = httpx.post(f"{base}/predict_proba", json={"rows": rows}, timeout=60)
    assert predict.status_code == 200 and proba.status_code == 200, (predict.text, proba.text)
    return predict.json()["predictions"], proba.json()["probabilities"]


def _store_model_files(built: Built) -> set[str]:
    import bentoml

    return {p.name for p in Path(bentoml.models.get(built.manifest["model_tag"]).path).iterdir()}


def test_a_model_that_converts_exactly_serves_compiled(tmp_path: Path) -> None:
    from nb2prod.builder.pipeline import build

    built = Built(build(FIXTURES / "runtime" / "plan_upgrades.ipynb", out_dir=tmp_path))
    serving = built.manifest["serving"]
    assert serving["runtime"] == "compiled" and serving["reason"] is None
    assert serving["parity"]["rows"] == 900 and serving["parity"]["max_abs_diff"] <= 1e-6
    assert built.result.to_dict()["serving"] == serving
    assert any(p.startswith("onnxruntime==") for p in built.manifest["packages"])
    assert "onnxruntime==" in (built.src / "bentofile.yaml").read_text()
    assert {"model.pkl", "model.onnx"} <= _store_model_files(built)
    rows, expected, _ = _pickle_answers(built, 200)
    with serve(built.tag) as base:
        predictions, probabilities = _served(base, rows)
        singles = [_served(base, [row]) for row in rows[:10]]
    assert predictions == expected["predict"].tolist()
    np.testing.assert_allclose(probabilities, expected["predict_proba"], rtol=0, atol=1e-6)
    assert [s[0][0] for s in singles] == expected["predict"][:10].tolist()
    np.testing.assert_allclose(
        [s[1][0] for s in singles], expected["predict_proba"][:10], atol=1e-6
    )


def test_trees_skl2onnx_cannot_convert_serve_by_treelite(churn: Built) -> None:
    # HistGradientBoosting: skl2onnx 1.20 fails on scikit-learn 1.9's trees, so the one-hot
    # step is ONNX and the trees Treelite; rows with a missing value go to the pickle
    serving = churn.manifest["serving"]
    assert serving["runtime"] == "compiled" and serving["reason"] is None, serving
    assert serving["parity"]["engine"] == "onnxruntime+treelite"
    assert serving["parity"]["max_abs_diff"] <= 1e-6
    assert churn.result.to_dict()["serving"] == serving
    packages = churn.manifest["packages"]
    assert any(p.startswith("treelite==") for p in packages)
    assert any(p.startswith("onnxruntime==") for p in packages)
    assert {"model.pkl", "model.onnx", "model.treelite"} <= _store_model_files(churn)
    rows, expected, features = _pickle_answers(churn, 200)
    assert features.isna().any(axis=None)  # rows with a missing value are among them
    with serve(churn.tag) as base:
        predictions, probabilities = _served(base, rows)
    assert predictions == expected["predict"].tolist()
    np.testing.assert_allclose(probabilities, expected["predict_proba"], rtol=0, atol=1e-6)


def test_a_model_that_does_not_convert_serves_the_pickle(tmp_path: Path) -> None:
    from nb2prod.builder.pipeline import build

    # np.log1p in a FunctionTransformer: skl2onnx converts no Python function
    notebook = FIXTURES / "runtime" / "plan_upgrades_log_spend.ipynb"
    built = Built(build(notebook, out_dir=tmp_path))
    serving = built.manifest["serving"]
    assert serving["runtime"] == "python" and serving["parity"] is None
    assert "skl2onnx could not convert the model" in serving["reason"]
    assert "FunctionTransformer is not supported" in serving["reason"]
    assert built.result.to_dict()["serving"] == serving
    assert not any(p.startswith(("onnxruntime", "treelite")) for p in built.manifest["packages"])
    assert "model.onnx" not in _store_model_files(built)
    rows, expected, _ = _pickle_answers(built, 200)
    with serve(built.tag) as base:
        predictions, probabilities = _served(base, rows)
    assert predictions == expected["predict"].tolist()
    np.testing.assert_allclose(probabilities, expected["predict_proba"], rtol=1e-12, atol=0)
    manifest = json.loads((built.src / "nb2prod.json").read_text())
    assert manifest["serving"] == serving
