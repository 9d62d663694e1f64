"""Per-row explanations over the input columns: SHAP's permutation explainer, whole path.

Copied into every bento as ``nb2prod_explain.py``: it imports only what a bento ships, never
nb2prod, and imports shap only when the explainer is first built (about 2 s; the service
does that at start, in the explainer's own thread). shap's masking kernels are numba
functions; at these sizes (40 background rows, tens of evaluations a row) their interpreted
Python takes about a millisecond, and compiling them about 6 s, so when nothing in the
process has loaded numba yet, shap is imported with numba's JIT off (:func:`import_shap`).

The explained function is the service's own path from validated input rows to the model's
output (the lifted features, then the model). SHAP masks a matrix of integer codes, one per
input column: each code points into that column's table of values (the background's, then
the explained rows'), and the function decodes codes back into a frame with the schema's
dtypes. So strings, categories and nullable integers are masked like numbers, and every
value the function sees is one that passed the schema.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

SEED = 0
# Sized so that one row of either example notebook is explained in under 100 ms on a 2-core
# machine (benchmarks/explain.py): 40 background rows and 2 antithetic permutations.
BACKGROUND_ROWS = 40
PERMUTATIONS = 2


class Codes:
    """Each input column as integer codes into a table of its distinct values.

    Codes ``0..k-1`` of a column are the background's distinct values, in order of first
    appearance; the values of the rows being explained follow. A missing value is a value of
    its own, so a row's null is masked and restored like any other value.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.columns, self.dtypes = frame, list(frame.columns), frame.dtypes
        self.codes, self.tables = self._factorize(frame)

    @staticmethod
    def _factorize(frame: pd.DataFrame) -> tuple[np.ndarray, list[Any]]:
        codes, tables = np.empty(frame.shape, dtype=np.int64), []
        for j, column in enumerate(frame.columns):
            values = frame[column].array
            found, _ = pd.factorize(frame[column], use_na_sentinel=False)
            # each code's value as the frame holds it at its first row (None stays None)
            _, first = np.unique(found, return_index=True)
            codes[:, j] = found
            tables.append(values.take(first))
        return codes, tables

    def extended(self, frame: pd.DataFrame) -> tuple[Codes, np.ndarray]:
        """These codes with ``frame``'s values added to the tables, and ``frame``'s codes.

        The background's codes stay what they were: factorizing keeps first-appearance order.
        """
        both = pd.concat([self.frame, frame[self.columns]], ignore_index=True)
        grown = Codes(both)
        grown.dtypes = frame.dtypes[self.columns]  # decoded rows are typed as the request's
        return grown, grown.codes[len(self.codes) :]

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        """The frame whose values the ``codes`` matrix points to, with the original dtypes."""
        codes = np.asarray(codes).astype(np.intp, copy=False)
        data = {
            column: pd.Series(self.tables[j].take(codes[:, j]), dtype=self.dtypes[column])
            for j, column in enumerate(self.columns)
        }
        return pd.DataFrame(data, columns=self.columns)


def import_shap() -> Any:
    """``import shap``; with numba's JIT off for shap's own functions when numba is not loaded.

    numba reads ``NUMBA_DISABLE_JIT`` when it is first imported, and its ``njit`` then leaves
    each function as plain Python. Where numba is loaded already (the notebook's code uses
    it), it is left as it is, and shap's kernels compile on their first call.
    """
    if "shap" in sys.modules or "numba" in sys.modules:
        import shap

        return shap
    before = os.environ.get("NUMBA_DISABLE_JIT")
    os.environ["NUMBA_DISABLE_JIT"] = "1"
    try:
        import shap
    finally:
        if before is None:
            os.environ.pop("NUMBA_DISABLE_JIT", None)
        else:
            os.environ["NUMBA_DISABLE_JIT"] = before
    return shap


def background(
    reference: pd.DataFrame, rows: int = BACKGROUND_ROWS, seed: int = SEED
) -> pd.DataFrame:
    """A seeded sample of the reference rows (all of them when there are fewer)."""
    if len(reference) > rows:
        reference = reference.sample(n=rows, random_state=seed)
    return reference.reset_index(drop=True)


class Explainer:
    """Shapley values of ``output`` (a frame of input rows -> one value, or one per class).

    Built once; shap and its explainer come on the first call. Calls are serialized: the
    explained rows' values live in the code tables for the length of one call. Each row is
    explained with the random state reset to ``seed``, so a row gets the same answer alone
    or in any request.
    """

    def __init__(
        self,
        reference: pd.DataFrame,
        output: Callable[[pd.DataFrame], np.ndarray],
        *,
        permutations: int = PERMUTATIONS,
        seed: int = SEED,
    ) -> None:
        self.base = Codes(reference)
        self.output, self.permutations, self.seed = output, permutations, seed
        self.current = self.base
        self.lock = threading.Lock()
        self._shap: Any = None

    def _outputs(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.output(self.current.decode(codes)), dtype=float)

    def _explainer(self) -> Any:
        if self._shap is None:
            shap = import_shap()  # here, not at import: it costs seconds of cold start
            masker = shap.maskers.Independent(self.base.codes, max_samples=len(self.base.codes))
            self._shap = shap.PermutationExplainer(self._outputs, masker, seed=self.seed)
        return self._shap

    def explain(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of ``frame``: the explained output, the base value and the attributions.

        Shapes are (rows, outputs), (rows, outputs) and (rows, columns, outputs); the
        attributions of a row add up to its output minus its base value (antithetic
        permutations make that exact), and a column the output never reads gets 0.
        """
        with self.lock:
            state = np.random.get_state()  # shap seeds and draws from the global state
            explainer = self._explainer()
            self.current, codes = self.base.extended(frame)
            columns = len(self.base.columns)
            evals = self.permutations * (2 * columns + 1)
            values, bases = [], []
            try:
                for row in codes:
                    np.random.seed(self.seed)
                    found = explainer(row[None, :], max_evals=evals, silent=True)
                    values.append(np.asarray(found.values[0], dtype=float).reshape(columns, -1))
                    bases.append(np.asarray(found.base_values[0], dtype=float).reshape(-1))
                outputs = np.asarray(self.output(frame[self.base.columns]), dtype=float)
            finally:
                np.random.set_state(state)
                self.current = self.base
            return outputs.reshape(len(frame), -1), np.stack(bases), np.stack(values)


def answer(
    columns: list[str],
    outputs: np.ndarray,
    bases: np.ndarray,
    values: np.ndarray,
    predictions: list[Any],
    labels: list[str],
) -> list[dict[str, Any]]:
    """One JSON object per row: ``prediction``, and per explained output (one ``label``
    each) its value, base value and one attribution per input column."""
    rows = []
    for i, prediction in enumerate(predictions):
        if len(labels) == 1:
            row = {
                "output": float(outputs[i, 0]),
                "base_value": float(bases[i, 0]),
                "attributions": dict(zip(columns, values[i, :, 0].tolist())),
            }
        else:
            row = {
                "output": dict(zip(labels, outputs[i].tolist())),
                "base_value": dict(zip(labels, bases[i].tolist())),
                "attributions": {
                    label: dict(zip(columns, values[i, :, k].tolist()))
                    for k, label in enumerate(labels)
                },
            }
        rows.append({"prediction": prediction, **row})
    return rows
