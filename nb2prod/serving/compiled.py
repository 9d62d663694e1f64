"""The compiled model: ONNX Runtime for complete frames, the pickled model for the rest.

Copied into every bento as ``nb2prod_compiled.py``: it imports only numpy, pandas and (when a
model is loaded) onnxruntime, never nb2prod. The build's parity gate vouched for the compiled
model on complete rows only, so a frame with a missing value goes to the pickled model.
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
        try:
            if self.layout == "matrix":
                ((name, dtype),) = self.inputs
                values = (
                    features.to_numpy(dtype=dtype)
                    if isinstance(features, pd.DataFrame)
                    else np.asarray(features, dtype=dtype)
                )
                if values.ndim != 2 or np.isnan(values).any():
                    raise NotCompiled(name)
                return {name: values}
            feeds = {}
            for name, dtype in self.inputs:
                column = features[name]
                if dtype is None:
                    values = column.to_numpy(dtype=object)
                    if pd.isna(values).any():
                        raise NotCompiled(name)
                else:
                    values = column.to_numpy(dtype=dtype)
                    if np.isnan(values).any():
                        raise NotCompiled(name)
                feeds[name] = values.reshape(-1, 1)
            return feeds
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, NotCompiled):
                raise
            raise NotCompiled(str(exc)) from exc

    def run(self, method: str, features: Any) -> np.ndarray:
        """``method``'s answer from ONNX Runtime alone, shaped as the pickled model's.

        Raises:
            NotCompiled: ``features`` cannot be fed (see :meth:`feeds`).
        """
        feeds = self.feeds(features)
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

    def predict(self, features: Any) -> Any:
        """The pickled model's ``predict``: compiled when ``features`` is complete."""
        try:
            return self.run("predict", features)
        except NotCompiled:
            return self.model.predict(features)

    def _predict_proba(self, features: Any) -> Any:
        try:
            return self.run("predict_proba", features)
        except NotCompiled:
            return self.model.predict_proba(features)


def load(model_file: str | Path, model: Any, threads: int = 1) -> CompiledModel:
    """The compiled model beside ``model_file`` (``model.onnx``, and ``model.treelite`` when
    Treelite predicts, next to ``model.pkl``)."""
    trees = Path(model_file).with_name(TREES_FILE)
    return CompiledModel(
        Path(model_file).with_name(ONNX_FILE), model, threads, trees if trees.is_file() else None
    )
