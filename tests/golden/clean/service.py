"""Generated from clean.ipynb by nb2prod 0.1.0; edit the notebook, not this file.

The clean service: validate with the lifted schema, run the lifted features, predict.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from pydantic import BaseModel
from starlette.responses import JSONResponse

from nb2prod_auth import KeysAndLimits, client_of
from nb2prod_batching import BATCH_MAX_ROWS, validate_many
from nb2prod_contract import request_schema, row_schema
from nb2prod_explain import Explainer, answer, background
from nb2prod_fastpath import validate_fast
from nb2prod_limits import RequestLimits
from nb2prod_runtime import Batcher, NonFinite, call_model, check_features, check_outputs
from nb2prod_sink import Sink
from lifted.schema import Raw
from lifted.features import features as entrypoint

HERE = Path(__file__).parent
MANIFEST = json.loads((HERE / "nb2prod.json").read_text(encoding="utf-8"))
MODEL_VERSION = "<version>"
INPUT_SCHEMA = Raw.to_schema()  # built once, at import
INPUT_COLUMNS = ["x", "color"]
MAX_ROWS = 10000
# /metadata's JSON Schemas: one row object, and the body /predict takes (a list of them)
ROW_SCHEMA = row_schema(INPUT_SCHEMA, INPUT_COLUMNS)
REQUEST_SCHEMA = request_schema(ROW_SCHEMA, MAX_ROWS)
MAX_BODY_BYTES = 3840000  # sized from MAX_ROWS; NB2PROD_MAX_BODY_MB overrides it
INVALID_STATUS = 422
# Values that coercion would change (12.7 in an int column, "12", true) are refused unless the
# notebook setting nb2prod.coercion is "lenient".
LENIENT = False
# POST /explain: Shapley values over the input columns, from shap's permutation explainer over
# validate -> features -> model, with a background sample of the reference rows
# (docs/serving.md). nb2prod.serving.explain_max_rows caps a request (413).
EXPLAIN_MAX_ROWS = 100
EXPLAINED_WHAT = "the probability of class 1 (classes[1])"
EXPLAINED = ["proba_1"]  # its labels in the answer: one, or one per class
REFERENCE = HERE / "monitoring" / "reference.parquet"
OUTPUT_COLUMNS = {"predict": ["prediction"], "predict_proba": ["proba_0", "proba_1"]}
# Adaptive batching in this process: concurrent requests' frames go into one model call of at
# most MAX_BATCH_ROWS rows, run with MODEL_THREADS OpenMP threads (docs/performance.md).
MAX_BATCH_ROWS = 20000
MODEL_THREADS = 1
# The prediction log for `nb2prod monitor`; NB2PROD_LOG_DIR and NB2PROD_LOG_MAX_MB override it.
sink = Sink.from_env("clean", MODEL_VERSION, max_mb=512)


class Predictions(BaseModel):
    """The answer of /predict: one prediction per input row, in the order sent."""

    predictions: list[Any]
    model_version: str


class Probabilities(BaseModel):
    """The answer of /predict_proba: one row of class probabilities per input row."""

    probabilities: list[list[float]]
    classes: list[Any]
    model_version: str


class Explanation(BaseModel):
    """One row's explanation: its attributions add up to ``output`` minus ``base_value``."""

    prediction: Any  # as /predict answers it
    output: float  # the explained value: the probability of class 1 (classes[1])
    base_value: float  # its mean over the background rows
    attributions: dict[str, float]  # per input column


class Explanations(BaseModel):
    """The answer of /explain: one explanation per input row, in the order sent."""

    explanations: list[Explanation]
    explained: str  # which output the attributions are of
    model_version: str


def _load(model_ref: Any) -> Any:
    with open(model_ref.path_of("model.pkl"), "rb") as fh:
        model = pickle.load(fh)
    if MANIFEST["serving"]["runtime"] != "compiled":
        return model
    # ONNX Runtime for complete frames, the pickle for frames with a missing value: the
    # build's parity gate compared them on every complete reference row (nb2prod.json)
    from nb2prod_compiled import load

    return load(model_ref.path_of("model.pkl"), model, threads=MODEL_THREADS)


class CleanModel:
    """Runs the lifted feature entry point and the model on adaptively batched frames.

    Batching happens in the API process: concurrent requests' frames go into one call, with
    no second process to pickle frames to (docs/performance.md has the measurements).
    """

    model_ref = bentoml.models.BentoModel("clean-model:<version>")

    def __init__(self) -> None:
        self.model = _load(self.model_ref)
        self.predict = Batcher(
            lambda frames: self._run("predict", frames), MAX_BATCH_ROWS, MODEL_THREADS
        )
        self.predict_proba = Batcher(
            lambda frames: self._run("predict_proba", frames), MAX_BATCH_ROWS, MODEL_THREADS
        )
        # shap's import (~2 s) runs at start in the explainer's own thread while the service
        # already answers (NB2PROD_EXPLAIN_WARM=0: on the first /explain instead)
        self.explainer: Explainer | None = None
        self.explain = Batcher(self._explain, EXPLAIN_MAX_ROWS, MODEL_THREADS)
        if os.environ.get("NB2PROD_EXPLAIN_WARM", "1") != "0":
            self.explain.executor.submit(lambda: self._explain([self._background().head(1)]))

    def _explained(self, frame: pd.DataFrame) -> np.ndarray:
        # /predict's path on the pickled model: the compiled one answers in float32, and a
        # frame with a missing value would go to the pickle, so the two would not add up
        model = self.model.model if MANIFEST["serving"]["runtime"] == "compiled" else self.model
        features = entrypoint(frame)
        check_features(features)
        return np.asarray(call_model(model, "predict_proba", features))[:, 1]

    def _background(self) -> pd.DataFrame:
        # the reference rows passed the schema whole at build: validated whole again (a sample
        # could fail a check on the whole column, a mean or uniqueness), for the dtypes a
        # request's rows get, then sampled
        return background(INPUT_SCHEMA.validate(pd.read_parquet(REFERENCE)[INPUT_COLUMNS]))

    def _explain(self, frames: list[pd.DataFrame]) -> list[tuple[np.ndarray, ...]]:
        if self.explainer is None:
            self.explainer = Explainer(self._background(), self._explained)
        return [self.explainer.explain(frame) for frame in frames]

    def _run(self, method: str, frames: list[pd.DataFrame]) -> list[np.ndarray]:
        # One request's frame per item: each keeps its validated dtypes, and the answer is
        # split back per request. An infinite feature or a non-finite prediction raises
        # NonFinite; the batcher then runs the requests one by one, so only the culprit fails.
        batch = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        features = entrypoint(batch)
        check_features(features)
        out = np.asarray(call_model(self.model, method, features))  # input validated above
        check_outputs(out, OUTPUT_COLUMNS[method])
        bounds = np.cumsum([0] + [len(f) for f in frames])
        return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@bentoml.service(
    name="clean",
    traffic={"timeout": 30, "max_concurrency": 256},
)
class Clean:
    """clean: trained from clean.ipynb; see /metadata for the schema and manifest."""

    model_ref = CleanModel.model_ref  # ships the model in the bento

    def __init__(self) -> None:
        self.model = CleanModel()

    def _reject(
        self, ctx: bentoml.Context, status: int, message: str, failures: list, **extra: Any
    ) -> JSONResponse:
        ctx.response.status_code = status  # BentoML sets the response's status from the context
        body = {"error": message, "failures": failures, "model_version": MODEL_VERSION, **extra}
        return JSONResponse(body, status_code=status)

    # What the fast path cannot decide, Pandera judges in one worker thread: the requests that
    # arrive while it works share its next call, each answered as alone (nb2prod_batching).
    pandera = Batcher(
        lambda requests: validate_many(INPUT_SCHEMA, requests, INPUT_COLUMNS, lenient=LENIENT),
        BATCH_MAX_ROWS,
    )

    async def _validated(self, rows: list[dict[str, Any]], ctx: bentoml.Context):
        if len(rows) > MAX_ROWS:
            return None, self._reject(
                ctx, 413, f"A request may hold at most {MAX_ROWS} rows, not {len(rows)}.", []
            )
        # The fast path takes microseconds; Pandera may take a second on a large bad request,
        # so it runs in the batcher's thread and the event loop keeps answering everyone else.
        frame = validate_fast(INPUT_SCHEMA, rows, INPUT_COLUMNS)
        if frame is not None:
            return frame, None
        frame, failures = await self.pandera(rows)
        if failures:
            bad_rows = sorted({f["row"] for f in failures if f["row"] is not None})
            shown = (
                f" (the first {len(failures)} are listed)" if failures.total > len(failures) else ""
            )
            message = (
                f"{failures.total} schema failure(s)"
                + (f" in row(s) {', '.join(map(str, bad_rows[:20]))}" if bad_rows else "")
                + f"; nothing was predicted{shown}."
            )
            body = self._reject(ctx, INVALID_STATUS, message, failures)
            return None, body
        return frame, None

    def _non_finite(self, ctx: bentoml.Context, exc: NonFinite) -> JSONResponse:
        return self._reject(ctx, INVALID_STATUS, str(exc), [exc.failure])

    @bentoml.api
    async def predict(self, rows: list[dict[str, Any]], ctx: bentoml.Context) -> Predictions:
        """Predict for a list of row objects; invalid rows get a 422 listing every failure."""
        frame, rejected = await self._validated(rows, ctx)
        if rejected is not None:
            return rejected
        if frame.empty:
            return Predictions(predictions=[], model_version=MODEL_VERSION)
        try:
            predictions = await self.model.predict(frame)
        except NonFinite as exc:
            return self._non_finite(ctx, exc)
        client = client_of(ctx.request.scope)  # the key name, never the key
        sink.log(
            "predict", frame, predictions, ["prediction"], client=client
        )  # queued; never raises
        # Built from plain Python values that already have the declared types: no re-validation.
        return Predictions.model_construct(
            predictions=predictions.tolist(), model_version=MODEL_VERSION
        )

    @bentoml.api
    async def predict_proba(
        self, rows: list[dict[str, Any]], ctx: bentoml.Context
    ) -> Probabilities:
        """Class probabilities per row, columns in the order of ``classes``."""
        frame, rejected = await self._validated(rows, ctx)
        if rejected is not None:
            return rejected
        if frame.empty:
            return Probabilities(probabilities=[], classes=[0, 1], model_version=MODEL_VERSION)
        try:
            proba = await self.model.predict_proba(frame)
        except NonFinite as exc:
            return self._non_finite(ctx, exc)
        client = client_of(ctx.request.scope)  # the key name, never the key
        sink.log(
            "predict_proba", frame, proba, ["proba_0", "proba_1"], client=client
        )  # queued; never raises
        return Probabilities.model_construct(
            probabilities=proba.tolist(), classes=[0, 1], model_version=MODEL_VERSION
        )

    @bentoml.api
    async def explain(self, rows: list[dict[str, Any]], ctx: bentoml.Context) -> Explanations:
        """Per row: the prediction, a base value and one attribution per input column, which
        add up to the explained output minus the base value; invalid rows get /predict's 422."""
        if len(rows) > EXPLAIN_MAX_ROWS:
            message = (
                f"An /explain request may hold at most {EXPLAIN_MAX_ROWS} rows, not {len(rows)}."
            )
            return self._reject(ctx, 413, message, [], max_rows=EXPLAIN_MAX_ROWS)
        frame, rejected = await self._validated(rows, ctx)
        if rejected is not None:
            return rejected
        if frame.empty:
            return Explanations(
                explanations=[], explained=EXPLAINED_WHAT, model_version=MODEL_VERSION
            )
        try:
            predictions = await self.model.predict(frame)
            outputs, bases, values = await self.model.explain(frame)
        except NonFinite as exc:
            return self._non_finite(ctx, exc)
        found = answer(INPUT_COLUMNS, outputs, bases, values, predictions.tolist(), EXPLAINED)
        return Explanations.model_construct(
            explanations=[Explanation.model_construct(**row) for row in found],
            explained=EXPLAINED_WHAT,
            model_version=MODEL_VERSION,
        )

    @bentoml.api(route="/metadata")
    def metadata(self) -> dict[str, Any]:
        """The build manifest, and as JSON Schema one input row and the /predict body."""
        return {"manifest": MANIFEST, "input_schema": ROW_SCHEMA, "request_schema": REQUEST_SCHEMA}


# Keys (401) and per-client rates (429) first, outermost: nb2prod_auth reads NB2PROD_API_KEYS_FILE.
Clean.add_asgi_middleware(KeysAndLimits, model_version=MODEL_VERSION)
# Limits at the door, before BentoML parses a body: size (413), type (415), read time (408).
Clean.add_asgi_middleware(RequestLimits, max_body_bytes=MAX_BODY_BYTES, model_version=MODEL_VERSION)
