"""The service's model path: adaptive in-process batching, with one request's failure its own.

Copied into every bento as ``nb2prod_runtime.py``: it imports only what a bento ships, never
nb2prod.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class NonFinite(ValueError):
    """A row whose features or prediction is not finite: that request's fault, answered 422."""

    def __init__(self, row: int, column: str, stage: str) -> None:
        self.row, self.column, self.stage = row, column, stage
        super().__init__(
            f"row {row}: the {stage} `{column}` is not finite (an infinity, or a NaN prediction), "
            "so nothing was predicted; the input passed the schema but is out of the range "
            "the notebook's code handles."
        )

    @property
    def failure(self) -> dict[str, Any]:
        """The failure as the 422 body lists it."""
        return {
            "row": self.row,
            "column": self.column,
            "check": f"finite {self.stage}",
            "value": None,
        }


def check_features(features: Any) -> None:
    """Raise :class:`NonFinite` at the first infinite value of the model's input.

    A NaN stays: it is a missing value, which the schema allowed and the model may handle.
    """
    if isinstance(features, pd.DataFrame):
        # Only float columns can hold an infinity; column by column, no frame copied
        # (select_dtypes was ~0.3 ms of a one-row request). The first bad row, then column.
        first = None
        for i, dtype in enumerate(features.dtypes):
            if dtype.kind != "f":
                continue
            column = features.iloc[:, i].to_numpy(dtype=float, na_value=np.nan)
            rows = np.flatnonzero(np.isinf(column))
            if len(rows) and (first is None or rows[0] < first[0]):
                first = (int(rows[0]), i)
        if first is not None:
            raise NonFinite(first[0], str(features.columns[first[1]]), "feature")
        return
    values = np.asarray(features)
    if values.dtype.kind not in "fiu":
        return
    values = values.reshape(len(values), -1).astype(float)
    names = [f"feature {i}" for i in range(values.shape[1])]
    bad = np.argwhere(np.isinf(values))
    if len(bad):
        row, col = bad[0]
        raise NonFinite(int(row), str(names[col]), "feature")


def check_outputs(outputs: np.ndarray, columns: list[str]) -> None:
    """Raise :class:`NonFinite` at the first NaN or infinite prediction."""
    if outputs.dtype.kind != "f":
        return
    values = outputs.reshape(len(outputs), -1)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        row, col = bad[0]
        raise NonFinite(int(row), columns[min(col, len(columns) - 1)], "prediction")


def deferred(proba: np.ndarray, below: float) -> list[bool]:
    """Per row, whether its top class probability is under ``below`` (a person decides)."""
    values = np.asarray(proba, dtype=float)
    return (values.reshape(len(values), -1).max(axis=1) < below).tolist() if len(values) else []


def complete(features: Any) -> bool:
    """No missing value anywhere in the model's input (``check_features`` refused infinity)."""
    if isinstance(features, pd.DataFrame):
        return not features.isna().to_numpy().any()
    values = np.asarray(features)
    return values.dtype.kind in "biuf" and not np.isnan(values.astype(float)).any()


def call_model(model: Any, method: str, features: Any) -> Any:
    """``model.<method>(features)``, without scikit-learn validating the input once more.

    Sound only because every frame that reaches the model here passed the lifted schema and
    ``check_features`` (no infinity) and, checked now, holds no missing value: scikit-learn's
    ``assume_finite`` is then true of it, and the estimator's parameters were validated when
    it was fitted (``skip_parameter_validation``). A frame with a missing value keeps
    scikit-learn's own checks, so a model that cannot take NaN still says so.
    """
    predict = getattr(model, method)
    if getattr(type(model), "checks_completeness", False):
        return predict(features)  # the compiled model: its feeds are the completeness check
    if not complete(features):
        return predict(features)
    try:
        import sklearn
    except ImportError:  # not a scikit-learn model
        return predict(features)
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return predict(features)


MODEL_FILE_ENV = "NB2PROD_MODEL_FILE"


class ModelNotLoaded(RuntimeError):
    """The generated tests could not load the trained model: a setup fault, not a property's."""


def load_model(tag: str, runtime: str | None = None) -> Any:
    """The trained model for the generated tests: ``NB2PROD_MODEL_FILE`` when set (during the
    build and ``nb2prod test`` of a build directory), else ``tag`` in the BentoML store.

    It is the runtime the service serves: ``runtime``, or else the manifest's
    ``serving.runtime`` (``nb2prod.json`` beside this module). ``compiled`` wraps the pickle
    with ``model.onnx`` from beside ``model.pkl`` (its sibling module ``compiled``).

    Raises:
        ModelNotLoaded: the file or the stored model is missing or does not unpickle here.
    """
    import json
    import os
    import pickle
    from pathlib import Path

    path = os.environ.get(MODEL_FILE_ENV)
    where = f"{MODEL_FILE_ENV}={path}" if path else f"model {tag} in the BentoML store"
    try:
        if not path:
            import bentoml

            path = bentoml.models.get(tag).path_of("model.pkl")
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if runtime is None:
            manifest = Path(__file__).with_name("nb2prod.json")
            found = json.loads(manifest.read_text()) if manifest.is_file() else {}
            runtime = (found.get("serving") or {}).get("runtime", "python")
        if runtime != "compiled":
            return model
        import importlib

        # its sibling by the name it has here: nb2prod_compiled in a bento's src/,
        # nb2prod.serving.compiled in nb2prod
        compiled = importlib.import_module(__name__.rpartition("runtime")[0] + "compiled")
        return compiled.load(path, model)
    except Exception as exc:  # any reason (missing, unpicklable here): one sentence
        raise ModelNotLoaded(
            f"cannot load the model from {where} ({type(exc).__name__}: {exc})"
        ) from exc


class Batcher:
    """Coalesces the frames of concurrent requests into one model call, in this process.

    While one batch runs (in a worker thread, so the event loop keeps parsing and validating),
    the requests that arrive queue up; the next call takes them all, up to ``max_rows`` rows.
    A lone request never waits for company. ``run`` maps a list of frames to one answer each.
    When a batch raises, its requests run again one by one, so only the culprit gets the error.
    """

    def __init__(self, run: Any, max_rows: int, threads: int = 1) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.run, self.max_rows = run, max_rows
        self.queue: list[tuple[pd.DataFrame, Any]] = []
        self.busy = False
        self.executor = ThreadPoolExecutor(
            1, "nb2prod-model", initializer=_limit_threads, initargs=(threads,)
        )

    async def __call__(self, frame: pd.DataFrame) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((frame, future))
        if not self.busy:
            self.busy = True
            loop.create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[pd.DataFrame, Any]]:
        count, rows = 1, len(self.queue[0][0])
        while count < len(self.queue) and rows + len(self.queue[count][0]) <= self.max_rows:
            rows += len(self.queue[count][0])
            count += 1
        taken, self.queue = self.queue[:count], self.queue[count:]
        return taken

    async def _drain(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch = self._take()
                try:
                    answers = await loop.run_in_executor(
                        self.executor, self.run, [f for f, _ in batch]
                    )
                except Exception as exc:  # noqa: BLE001 - handed to the callers, one by one
                    if len(batch) == 1:
                        _settle(batch[0][1], exc=exc)
                        continue
                    for frame, future in batch:  # whose fault was it?
                        try:
                            (answer,) = await loop.run_in_executor(self.executor, self.run, [frame])
                        except Exception as alone:  # noqa: BLE001 - that request's own error
                            _settle(future, exc=alone)
                        else:
                            _settle(future, answer)
                    continue
                for (_, future), answer in zip(batch, answers):
                    _settle(future, answer)
        finally:
            self.busy = False


def _settle(future: Any, answer: Any = None, *, exc: BaseException | None = None) -> None:
    if future.done():  # the caller went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(answer)


def _limit_threads(threads: int) -> None:
    # Batching gives the parallelism; OpenMP threads per call only contend for the same cores.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
