# Generated from clean.ipynb by nb2prod 0.1.0; edit the notebook, not this file.
"""Parity: the lifted pipeline, fed JSON rows as the service is, reproduces the notebook.

Run from the bento's src/ (or the build directory's src/) with ``pytest tests``. The model comes
from NB2PROD_MODEL_FILE when set (during `nb2prod build`), else from the BentoML store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SRC = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SRC))

from nb2prod_runtime import load_model  # noqa: E402
from nb2prod_validation import validate  # noqa: E402
from lifted.schema import Raw  # noqa: E402
from lifted.features import features as entrypoint  # noqa: E402

MODEL_TAG = "clean-model:<version>"
INPUT_COLUMNS = ["x", "color"]


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them: missing values as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def test_lifted_pipeline_reproduces_the_notebooks_predictions():
    """JSON rows -> schema validation -> lifted features -> model equals the notebook's run."""
    reference = pd.read_parquet(SRC / "monitoring" / "reference.parquet")
    expected = pd.read_parquet(SRC / "monitoring" / "predictions.parquet")["prediction"]
    rows = json.loads(json.dumps(records(reference)))
    frame, failures = validate(Raw.to_schema(), rows, INPUT_COLUMNS)
    assert failures == [], f"the notebook's own training rows fail the schema: {failures[:5]}"
    model_input = entrypoint(frame)
    got = np.asarray(load_model(MODEL_TAG).predict(model_input))
    if np.issubdtype(got.dtype, np.number):
        np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-9, atol=1e-12)
    else:
        assert (got == expected.to_numpy()).all()
