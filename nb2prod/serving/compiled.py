"""The compiled model: ONNX Runtime for complete frames, the pickled model for the rest.

Copied into every bento as ``nb2prod_compiled.py``: it imports only numpy, pandas and (when a
model is loaded) onnxruntime, never nb2prod. The build's parity gate vouched for the compiled
model on complete rows only, so a row with a missing value goes to the pickled model: only
that row. A frame is split by rows into the complete ones (compiled) and the rest (the
pickle, on those rows alone), and the two answers are put back in the frame's order: a
complete row is answered as in a frame of complete rows (the service's batcher already puts
rows in varying company), an incomplete one by the pickle. When the two answers could not be
stitched exactly (another dtype or shape, not an array), the whole frame goes to the
pickle, as before.

Speed: Treelite's cost per row is flat (~22 µs for churn's 150 trees, one thread);
scikit-learn's HistGradientBoosting predictor costs 73 µs a row on 100 rows, 13 µs on 1,000
and 6 µs on 20,000 (its fixed cost is spread). So a frame of ``TREES_MAX_ROWS`` rows or more
goes to the pickle whole, where Treelite predicts (ONNX Runtime alone is faster at any size).
Both answers are within the parity gate's tolerance of each other, with identical labels on
the rows the gate compared; a row's probabilities may differ in the 7th decimal between a
small request and a large batch, as the pickle's own answers differ between its thread counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ONNX_FILE = "model.onnx"  # beside model.pkl, in the BentoML model and the build's train/
# A tree ensemble skl2onnx cannot convert: model.onnx is the pipeline before it, and Treelite
# (its own import of the fitted scikit-learn trees) predicts from that matrix
TREES_FILE = "model.treelite"
TREES_MAX_ROWS = 1000  # frames this long or longer: the pickle is faster than Treelite
META_KEY = "nb2prod"  # the ONNX model's metadata_props entry: how to feed it, how to answer
# ONNX input types -> the numpy dtype fed (None: strings, fed as an object array)
_FEED_DTYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(string)": None}


class NotCompiled(ValueError):
    """This frame cannot be fed to the compiled model (a missing value, a column it lacks)."""


def session(onnx: bytes | str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime session on the CPU: ``threads`` intra- and inter-op, run sequentially."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: the build log is not the place for its notes
    source = onnx if isinstance(onnx, bytes) else str(onnx)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class CompiledModel:
    """The pickled ``model``'s ``predict`` and ``predict_proba``, answered by ONNX Runtime.

    Outputs have the pickled model's shape, dtype and class order (recorded in the ONNX
    model's metadata at build time). Attributes other than the two methods (``classes_``,
    ``steps``, ...) are the pickled model's.
    """

    # runtime.call_model leaves the completeness check to :meth:`feeds` (and skips
    # scikit-learn's config_context, which only the pickle would use)
    checks_completeness = True

    def __init__(
        self,
        onnx: bytes | str | Path,
        model: Any,
        threads: int = 1,
        trees: bytes | str | Path | None = None,
    ) -> None:
        self.model, self.threads = model, threads
        self.session = session(onnx, threads)
        meta = json.loads(self.session.get_modelmeta().custom_metadata_map[META_KEY])
        self.trees, self.tree_meta = None, meta.get("trees")
        if self.tree_meta:
            import treelite

            self.trees = (
                treelite.Model.deserialize_bytes(trees)
                if isinstance(trees, bytes)
                else treelite.Model.deserialize(str(trees))
            )
        self.layout: str = meta["layout"]  # "matrix": one 2-D input; "columns": one per column
        self.inputs = [(i.name, _FEED_DTYPES[i.type]) for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.label, self.shape = outputs[0], meta["predict"]
        self.proba = outputs[1] if meta.get("proba") and len(outputs) > 1 else None
        if self.tree_meta and self.tree_meta["classifier"]:
            self.proba = outputs[0]  # the trees' probabilities, from the pipeline's matrix
        if self.proba is not None and hasattr(model, "predict_proba"):
            self.predict_proba = self._predict_proba  # only where the pickled model has one

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "session"):  # not set yet (unpickling, a failed __init__)
            raise AttributeError(name)
        return getattr(self.model, name)

    def feeds(self, features: Any) -> dict[str, np.ndarray]:
        """The ONNX inputs for ``features``, copying only what a dtype change needs.

        Raises:
            NotCompiled: a value is missing, or a column is absent or of another kind.
        """
        feeds, complete = self.split(features)
        if not complete.all():
            raise NotCompiled("a missing value")
        return feeds

    def split(self, features: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The ONNX inputs for every row of ``features``, and which rows are complete (only
        those may be fed).

        Raises:
            NotCompiled: a column is absent or of another kind (no row may be fed).
        """
        try:
            if self.layout == "matrix":
                ((name, dtype),) = self.inputs
                values = (
                    features.to_numpy(dtype=dtype)
                    if isinstance(features, pd.DataFrame)
                    else np.asarray(features, dtype=dtype)
                )
                if values.ndim != 2:
                    raise NotCompiled(name)
                return {name: values}, ~np.isnan(values).any(axis=1)
            feeds, complete = {}, np.ones(len(features), dtype=bool)
            for name, dtype in self.inputs:
                column = features[name]
                if dtype is None:
                    values = column.to_numpy(dtype=object)
                    complete &= ~pd.isna(values)
                else:
                    values = column.to_numpy(dtype=dtype)
                    complete &= ~np.isnan(values)
                feeds[name] = values.reshape(-1, 1)
            return feeds, complete
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, NotCompiled):
                raise
            raise NotCompiled(str(exc)) from exc

    def run(self, method: str, features: Any) -> np.ndarray:
        """``method``'s answer from ONNX Runtime alone, shaped as the pickled model's.

        Raises:
            NotCompiled: ``features`` cannot be fed (see :meth:`feeds`).
        """
        return self._run(method, self.feeds(features))

    def _run(self, method: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if self.trees is not None:
            return self._run_trees(method, feeds)
        if method == "predict":
            (out,) = self.session.run([self.label], feeds)
            if self.shape["ndim"] == 1:
                out = out.reshape(len(out))
            return out.astype(np.dtype(self.shape["dtype"]), copy=False)
        if method == "predict_proba" and self.proba is not None:
            (out,) = self.session.run([self.proba], feeds)
            return out.astype(np.float64, copy=False)
        raise NotCompiled(method)

    def _run_trees(self, method: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The pipeline before the trees by ONNX Runtime, then the trees by Treelite."""
        import treelite

        (matrix,) = self.session.run(None, feeds)
        matrix = np.asarray(matrix, dtype=np.float64)
        if self.tree_meta["float32"]:  # scikit-learn's own trees compare float32 values
            matrix = matrix.astype(np.float32).astype(np.float64)
        raw = treelite.gtil.predict(self.trees, matrix, nthread=self.threads)
        out = raw.reshape(len(matrix), -1).astype(np.float64, copy=False)
        if not self.tree_meta["classifier"]:
            if method != "predict":
                raise NotCompiled(method)
            out = out.reshape(len(out)) if self.shape["ndim"] == 1 else out
            return out.astype(np.dtype(self.shape["dtype"]), copy=False)
        proba = np.hstack([1.0 - out, out]) if out.shape[1] == 1 else out
        if method == "predict_proba":
            return proba
        labels = np.asarray(self.model.classes_)[proba.argmax(axis=1)]
        return labels.astype(np.dtype(self.shape["dtype"]), copy=False)

    def answer(self, method: str, features: Any) -> Any:
        """``method``'s answer: complete rows compiled, the others by the pickle (see the
        module's docstring)."""
        pickled = getattr(self.model, method)
        if self.trees is not None and len(features) >= TREES_MAX_ROWS:
            return pickled(features)
        try:
            feeds, complete = self.split(features)
        except NotCompiled:
            return pickled(features)
        if complete.all():
            try:
                return self._run(method, feeds)
            except NotCompiled:
                return pickled(features)
        take = np.flatnonzero(complete)
        rest = np.flatnonzero(~complete)
        if not len(take) or not isinstance(features, (pd.DataFrame, np.ndarray)):
            return pickled(features)
        try:
            compiled = self._run(method, {name: v[take] for name, v in feeds.items()})
        except NotCompiled:
            return pickled(features)
        part = features.iloc[rest] if isinstance(features, pd.DataFrame) else features[rest]
        others = pickled(part)
        if (
            not isinstance(others, np.ndarray)
            or others.dtype != compiled.dtype
            or others.shape != (len(rest), *compiled.shape[1:])
        ):
            return pickled(features)  # not stitched exactly: the whole frame, as before
        out = np.empty((len(complete), *compiled.shape[1:]), dtype=compiled.dtype)
        out[take], out[rest] = compiled, others
        return out

    def predict(self, features: Any) -> Any:
        """The pickled model's ``predict``: compiled for the complete rows of ``features``."""
        return self.answer("predict", features)

    def _predict_proba(self, features: Any) -> Any:
        return self.answer("predict_proba", features)


def load(model_file: str | Path, model: Any, threads: int = 1) -> CompiledModel:
    """The compiled model beside ``model_file`` (``model.onnx``, and ``model.treelite`` when
    Treelite predicts, next to ``model.pkl``)."""
    trees = Path(model_file).with_name(TREES_FILE)
    return CompiledModel(
        Path(model_file).with_name(ONNX_FILE), model, threads, trees if trees.is_file() else None
    )
