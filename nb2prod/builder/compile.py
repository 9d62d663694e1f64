"""The compiled model: skl2onnx converts the fitted model, and it serves only where ONNX
Runtime reproduces the pickle on every complete reference row (the parity gate)."""

from __future__ import annotations

import json
import logging
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.builder.codegen import write
from nb2prod.errors import CompileError

if TYPE_CHECKING:
    import numpy as np

    from nb2prod.builder.codegen import Generated
    from nb2prod.builder.training import TrainingResult
    from nb2prod.notebook.analysis import CheckResult
    from nb2prod.serving.compiled import CompiledModel

log = logging.getLogger(__name__)
TOLERANCE = 1e-6  # probabilities and regression predictions; labels must be identical
# Tried in this order; the first that passes the gate serves. scikit-learn's trees compare
# float32 values (sklearn.tree casts X to float32), so for a model with trees float32 inputs are
# the exact ones: double would agree on the reference rows yet differ on a value that rounds
# across a threshold.
PRECISIONS = ("double", "float")
TREE_PRECISIONS = ("float", "double")
ROWS_FROM = "reference"  # the training run exposes no test rows (evaluation data: issue 13)
INSTALL = "pip install skl2onnx onnxruntime"


@dataclass(frozen=True)
class Serving:
    """Which runtime serves, why not the compiled one, and what the parity gate compared."""

    runtime: str  # "compiled" or "python"
    reason: str | None = None  # why the compiled model is not used; None when it is
    parity: dict[str, Any] | None = None  # {"rows", "max_abs_diff", "rows_from"}

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``serving`` entry."""
        return {"runtime": self.runtime, "reason": self.reason, "parity": self.parity}


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message`` (cut at ``limit``), and its cause the same way."""

    def words(e: BaseException, limit: int = limit) -> str:
        text = " ".join(str(e).split("\n", 1)[0].split())
        text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return words(exc)
    # the cause says why; the message around it is often a dump (skl2onnx: a node's arrays)
    return f"{words(cause).rstrip('.')}, raised as {words(exc, limit // 2)}"


def decide(
    checked: CheckResult, training: TrainingResult, src: Path, code: list[Generated]
) -> Serving:
    """The build's runtime for ``training``'s model; ``model.onnx`` is written beside
    ``model.pkl`` when it serves compiled, and removed otherwise.

    ``code`` is the lifted package (written to ``src``): the frame the gate compares is its
    entry point applied to the reference rows, validated as the service validates them.

    Raises:
        CompileError: ``serving.runtime`` is ``compiled`` and the model cannot serve compiled.
    """
    from nb2prod.serving.compiled import ONNX_FILE, TREES_FILE

    nb = checked.notebook
    setting = nb.settings.runtime
    out = training.model_file.with_name(ONNX_FILE)
    out.unlink(missing_ok=True)
    out.with_name(TREES_FILE).unlink(missing_ok=True)
    if setting == "python":
        return Serving("python", "the notebook sets serving.runtime: python")
    try:
        features = model_input(checked, training, src, code)
    except Exception as exc:  # noqa: BLE001 - the pickle serves; attach words a bad reference
        result = Serving("python", f"the reference rows could not be prepared ({one_line(exc)})")
    else:
        try:
            with open(training.model_file, "rb") as fh:
                model = pickle.load(fh)
            result = compile_model(model, features, out)
        except Exception as exc:  # noqa: BLE001 - the pickle's own predict failing here, ...
            out.unlink(missing_ok=True)
            out.with_name(TREES_FILE).unlink(missing_ok=True)
            result = Serving("python", f"the compiled model could not be tried ({one_line(exc)})")
    if result.runtime != "compiled" and setting == "compiled":
        raise CompileError(
            f"{nb.path.name}: the notebook sets serving.runtime: compiled, but its model "
            f"cannot serve compiled: {result.reason}.",
            notebook=str(nb.path),
            reason=result.reason,
        )
    if result.runtime == "compiled":
        log.info("runtime: compiled (parity on %d rows)", result.parity["rows"])
    else:
        log.info("runtime: python (%s)", result.reason)
    return result


def model_input(
    checked: CheckResult, training: TrainingResult, src: Path, code: list[Generated]
) -> Any:
    """The lifted entry point on the reference rows, sent through the service's validation."""
    import pandas as pd

    from nb2prod.bento.locate import load_pipeline
    from nb2prod.serving.validation import validate

    plan, settings = checked.plan, checked.notebook.settings
    write(code, src)
    pipeline = load_pipeline(
        src, {"entrypoint": plan.entrypoint, "input_schema": plan.input_schema}
    )
    reference = pd.read_parquet(training.reference_file)
    rows = reference.astype(object).where(reference.notna(), None).to_dict(orient="records")
    frame, failures = validate(
        pipeline.input_schema, rows, list(reference.columns), lenient=settings.coercion == "lenient"
    )
    if failures:
        raise ValueError(f"{failures.total} schema failure(s)")
    return pipeline.entrypoint(frame) if pipeline.entrypoint else frame


def candidates(features: Any, precisions: tuple[str, ...] = PRECISIONS) -> list[tuple[str, str]]:
    """``(layout, precision)`` pairs to try, the most exact first.

    A frame of numbers is tried as one matrix first (``frame.to_numpy()``, one input): per
    column, skl2onnx joins the inputs with a FeatureVectorizer, which computes in float32.
    Columns are needed when the model selects columns by name (a ColumnTransformer).
    """
    import numpy as np
    import pandas as pd

    if isinstance(features, pd.DataFrame):
        numeric = all(dtype.kind in "biuf" for dtype in features.dtypes)
        layouts = ["matrix", "columns"] if numeric else ["columns"]
    else:
        numeric = np.asarray(features).dtype.kind in "biuf"
        layouts = ["matrix"] if numeric and np.asarray(features).ndim == 2 else []
    return [(layout, p) for p in precisions for layout in layouts]


def _types(features: Any, layout: str, precision: str) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    number = DoubleTensorType if precision == "double" else FloatTensorType
    if layout == "matrix":
        return [("X", number([None, features.shape[1]]))]
    out = []
    for name, dtype in features.dtypes.items():
        if dtype.kind in "biuf":
            out.append((str(name), number([None, 1])))
        elif dtype.kind == "O" or str(dtype) in ("string", "category", "str"):
            out.append((str(name), StringTensorType([None, 1])))
        else:
            raise TypeError(f"column `{name}` is {dtype}, which the compiled model cannot take")
    return out


def convert(model: Any, features: Any, layout: str, precision: str, predict: Any) -> bytes:
    """The ONNX model of ``model`` for ``features``, with nb2prod's metadata (how to feed it,
    the shape and dtype of ``predict``, the pickle's predictions)."""
    import numpy as np
    from skl2onnx import convert_sklearn
    from sklearn.base import is_classifier

    from nb2prod.serving.compiled import META_KEY

    predict = np.asarray(predict)
    classifier = is_classifier(model)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if classifier else None
    onx = convert_sklearn(model, initial_types=_types(features, layout, precision), options=options)
    meta = {
        "layout": layout,
        "precision": precision,
        "predict": {"dtype": predict.dtype.str, "ndim": predict.ndim},
        "proba": bool(classifier and hasattr(model, "predict_proba")),
    }
    prop = onx.metadata_props.add()
    prop.key, prop.value = META_KEY, json.dumps(meta)
    return onx.SerializeToString()


def compile_model(
    model: Any, features: Any, out: Path | None = None, precisions: tuple[str, ...] = PRECISIONS
) -> Serving:
    """Convert ``model`` for ``features`` and keep the first candidate that passes the gate.

    The gate compares, on every row of ``features`` with no missing value, the pickle's and
    the compiled model's labels (identical) and probabilities or regression predictions
    (within ``TOLERANCE``). The compiled model is written to ``out`` when it passes. The
    reason of a fallback is the candidate that came closest: a row that differs, else the
    runtime's refusal, else the converter's error.
    """
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as exc:
        return Serving("python", f"{exc.name} is not installed ({INSTALL})")
    import numpy as np

    from nb2prod.serving.compiled import CompiledModel

    trees = list(_trees(model))
    if trees and precisions == PRECISIONS:
        precisions = TREE_PRECISIONS
    tried = candidates(features, precisions)
    hangs = any(np.isinf(tree.threshold).any() for tree in trees)  # splits on missing values
    if not tried:
        return Serving("python", f"the model input is a {type(features).__name__}, not a frame")
    rows = complete_rows(features)
    if not rows.any():
        return Serving("python", "no reference row has a complete model input to compare")
    subset = features[rows]
    expected = {"predict": model.predict(subset)}
    if hasattr(model, "predict_proba"):
        expected["predict_proba"] = model.predict_proba(subset)
    best: tuple[int, str] | None = None
    if hangs:
        tried, best = [], (0, HANGS)
    for layout, precision in tried:
        stage, why = 0, ""
        try:
            with warnings.catch_warnings():  # the converter's notes do not belong in the log
                warnings.simplefilter("ignore")
                onnx = convert(model, subset, layout, precision, expected["predict"])
                stage = 1
                compiled = CompiledModel(onnx, model)
            stage = 2
            parity, why = compare(compiled, subset, expected, rows)
        except Exception as exc:  # noqa: BLE001 - any converter or runtime failure is a reason
            verb = (
                "skl2onnx could not convert the model",
                "onnxruntime refused the converted model",
                "onnxruntime failed on the reference rows",
            )[stage]
            why = f"{verb} ({one_line(exc)})"
        else:
            if why is None:
                if out is not None:
                    out.write_bytes(onnx)
                log.debug("compiled with %s inputs as %s", precision, layout)
                return Serving("compiled", None, {**parity, "engine": "onnxruntime"})
        why = f"{why} [{precision} inputs]" if len(tried) > 1 else why
        if best is None or stage > best[0]:
            best = (stage, why)
    if _tree_final(model) is not None:  # the trees by Treelite, the steps before by ONNX
        result = compile_trees(model, subset, expected, rows, out)
        if result.runtime == "compiled":
            return result
        if best is None or result.reason.startswith("reference row"):
            best = (2, result.reason)
    return Serving("python", best[1] if best else "no candidate")


HANGS = (
    "the model's trees split on missing values (an infinite threshold), which skl2onnx 1.20 "
    "cannot convert: its threshold search never ends"
)
# What Treelite's own importer (treelite.sklearn) reads; True: scikit-learn compares float32
# values in it (sklearn.tree casts X), False: float64 (HistGradientBoosting)
TREELITE = {f"{kind}{task}": kind != "HistGradientBoosting" for kind in (
    "HistGradientBoosting", "RandomForest", "ExtraTrees", "GradientBoosting"
) for task in ("Classifier", "Regressor")}  # fmt: skip


def _tree_final(model: Any) -> Any:
    """The pipeline's last step when Treelite can read it and a step comes before it."""
    steps = getattr(model, "steps", None) or []
    if len(steps) < 2 or type(steps[-1][1]).__name__ not in TREELITE:
        return None
    return steps[-1][1]


def compile_trees(
    model: Any, subset: Any, expected: dict[str, Any], rows: Any, out: Path | None
) -> Serving:
    """skl2onnx for the steps before the trees (the matrix they see), Treelite for the trees,
    behind the same parity gate; ``model.treelite`` goes beside ``out`` when it passes."""
    import numpy as np
    import treelite
    from skl2onnx import convert_sklearn
    from sklearn.base import is_classifier

    from nb2prod.serving.compiled import META_KEY, TREES_FILE, CompiledModel

    final = _tree_final(model)
    stage = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tl = treelite.sklearn.import_model(final)
            stage = 1
            layout = candidates(subset, ("double",))[-1][0]
            prefix = convert_sklearn(model[:-1], initial_types=_types(subset, layout, "double"))
            predict = np.asarray(expected["predict"])
            meta = {
                "layout": layout,
                "precision": "double",
                "predict": {"dtype": predict.dtype.str, "ndim": predict.ndim},
                "proba": False,
                "trees": {
                    "classifier": bool(is_classifier(model)),
                    "float32": TREELITE[type(final).__name__],
                },
            }
            prop = prefix.metadata_props.add()
            prop.key, prop.value = META_KEY, json.dumps(meta)
            onnx, trees = prefix.SerializeToString(), tl.serialize_bytes()
            stage = 2
            compiled = CompiledModel(onnx, model, trees=trees)
            parity, why = compare(compiled, subset, expected, rows)
    except Exception as exc:  # noqa: BLE001 - any importer, converter or runtime failure
        verb = (
            "Treelite could not read the trees",
            "skl2onnx could not convert the steps before the trees",
            "ONNX Runtime and Treelite failed on the reference rows",
        )[stage]
        return Serving("python", f"{verb} ({one_line(exc)})")
    if why is not None:
        return Serving("python", f"{why} [Treelite]")
    if out is not None:
        out.write_bytes(onnx)
        out.with_name(TREES_FILE).write_bytes(trees)
    return Serving("compiled", None, {**parity, "engine": "onnxruntime+treelite"})


def _trees(model: Any, depth: int = 0) -> Iterator[Any]:
    """Every scikit-learn ``tree_`` in ``model`` (pipelines, transformers, ensembles)."""
    import numpy as np

    tree = getattr(model, "tree_", None)
    if tree is not None:
        yield tree
        return
    if depth > 8:
        return
    parts: list[Any] = [s for _, s, *_ in getattr(model, "steps", None) or []]
    parts += [t for _, t, *_ in getattr(model, "transformers_", None) or []]
    estimators = getattr(model, "estimators_", None)
    if estimators is not None:
        parts += list(np.ravel(np.asarray(estimators, dtype=object)))
    for part in parts:
        if not isinstance(part, str):
            yield from _trees(part, depth + 1)


def complete_rows(features: Any) -> np.ndarray:
    """A mask of the rows with no missing value."""
    import numpy as np
    import pandas as pd

    if isinstance(features, pd.DataFrame):
        return features.notna().all(axis=1).to_numpy()
    values = np.asarray(features, dtype=float)
    return ~np.isnan(values.reshape(len(values), -1)).any(axis=1)


def compare(
    compiled: CompiledModel, subset: Any, expected: dict[str, Any], rows: np.ndarray
) -> tuple[dict[str, Any], str | None]:
    """The parity entry, and the first row that differs (None when none does)."""
    import numpy as np

    from nb2prod.serving.compiled import NotCompiled

    positions = np.flatnonzero(rows)  # the reference row of each compared row
    max_diff = 0.0
    for method, want in expected.items():
        try:
            got = compiled.run(method, subset)
        except NotCompiled as exc:
            return {}, f"the compiled model could not be fed the reference rows ({exc})"
        want = np.asarray(want)
        if got.shape != want.shape or got.dtype != want.dtype:
            return {}, (
                f"the compiled {method} gives {got.dtype} {got.shape}, the pickle "
                f"{want.dtype} {want.shape}"
            )
        got2, want2 = got.reshape(len(got), -1), want.reshape(len(want), -1)
        labels = method == "predict" and (
            want.dtype.kind not in "f" or hasattr(compiled, "classes_")
        )
        if labels:
            bad = got2 != want2
        else:
            diff = np.abs(got2.astype(float) - want2.astype(float))
            bad = ~(diff <= TOLERANCE)  # NaN differs
            max_diff = max(max_diff, float(np.nanmax(diff)) if diff.size else 0.0)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            column = _column(method, compiled, col, got2.shape[1])
            return {}, (
                f"reference row {positions[row]} differs in {column}: pickle "
                f"{want2[row, col].item()!r}, compiled {got2[row, col].item()!r}"
                + ("" if labels else f" (tolerance {TOLERANCE:g})")
            )
    return {"rows": len(positions), "max_abs_diff": max_diff, "rows_from": ROWS_FROM}, None


def _column(method: str, compiled: CompiledModel, col: int, width: int) -> str:
    if method == "predict_proba":
        classes = list(getattr(compiled, "classes_", range(width)))
        return f"proba_{classes[col]}"
    return "prediction" if width == 1 else f"prediction[{col}]"
