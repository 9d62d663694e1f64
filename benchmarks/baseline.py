"""The baseline: the FastAPI + joblib server the guides show, with nb2prod's lifted features.

No validation, one uvicorn worker. ``NB2PROD_BASELINE_SRC`` is a bento's ``src/`` (for the
lifted feature code) and ``NB2PROD_BASELINE_MODEL`` the ``joblib.dump``-ed model;
``NB2PROD_BASELINE_ENTRYPOINT`` names the feature function (empty: rows go to the model as
they are). Run: ``uvicorn benchmarks.baseline:app``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import joblib
import pandas as pd
from fastapi import Body, FastAPI

sys.path.insert(0, os.environ["NB2PROD_BASELINE_SRC"])
_NAME = os.environ.get("NB2PROD_BASELINE_ENTRYPOINT", "features")
ENTRYPOINT = getattr(importlib.import_module("lifted.features"), _NAME) if _NAME else None
model = joblib.load(os.environ["NB2PROD_BASELINE_MODEL"])
app = FastAPI(title="baseline")


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(rows: Annotated[list[dict[str, Any]], Body(embed=True)]) -> dict[str, Any]:
    frame = pd.DataFrame(rows)
    inputs = ENTRYPOINT(frame) if ENTRYPOINT else frame
    return {"predictions": model.predict(inputs).tolist()}
