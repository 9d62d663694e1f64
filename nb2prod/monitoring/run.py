"""``nb2prod monitor``: run a bento's attached Evidently config against current data."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento.locate import Bento, Pipeline, load_pipeline, open_bento, store_model
from nb2prod.errors import MonitorError, Nb2ProdError
from nb2prod.monitoring.attach import (
    CONFIG,
    EVIDENTLY,
    FOLDER,
    PREDICTION,
    PREDICTIONS,
    REFERENCE,
    describe_failures,
    schema_failures,
)
from nb2prod.monitoring.inputs import Current, read_current
from nb2prod.monitoring.quality import (
    evaluation_outcomes,
    outcomes,
    quality,
    quality_report,
    target_values,
)
from nb2prod.monitoring.summary import (
    ColumnDrift,
    MonitorResult,
    deferral_summary,
    quiet,
    summarize,
)

__all__ = ["MIN_ROWS", "ColumnDrift", "MonitorResult", "monitor", "summarize"]

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from evidently import Dataset, Report
    from evidently.core.report import Snapshot
    from pandera.api.pandas.container import DataFrameSchema

log = logging.getLogger(__name__)
# Below this many current rows a drift test says little; ``--min-rows`` may lower it.
MIN_ROWS = 30


def _config(bento: Bento) -> dict[str, Any]:
    """The monitoring config attached at build time."""
    path = bento.src / FOLDER / CONFIG
    if not path.is_file():
        raise MonitorError(
            f"{bento.tag} has no monitoring config ({FOLDER}/{CONFIG}); "
            "rebuild it with this nb2prod to attach one."
        )
    return json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def _stage(doing: str) -> Iterator[None]:
    """Turn an unexpected failure while ``doing`` into one sentence (exit 2), not a traceback.

    Exit 1 means drift, and a nightly job retrains on it: a crash must never look like that.
    """
    try:
        yield
    except Nb2ProdError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        first = text.splitlines()[0].rstrip(".") if text else "no message"
        raise MonitorError(f"Could not {doing} ({type(exc).__name__}: {first}).") from exc


def _validated(
    frame: pd.DataFrame,
    bento: Bento,
    config: dict[str, Any],
    schema: DataFrameSchema,
    source: str,
) -> pd.DataFrame:
    columns = inputs_of(config)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MonitorError(
            f"Current data {source} lacks input column(s) {', '.join(missing)} of the schema "
            f"{bento.manifest['input_schema']}.",
            columns=missing,
        )
    reference = _reference(bento)
    inputs = frame[columns].copy()
    for column in columns:  # logs and CSV lose dtypes; cast back where the values allow it
        if inputs[column].dtype == reference[column].dtype:
            continue
        try:
            inputs[column] = inputs[column].astype(reference[column].dtype)
        except (TypeError, ValueError):
            continue
    valid, failures = schema_failures(schema, inputs)
    if failures:
        raise MonitorError(
            f"Current data {source} violates the input schema {bento.manifest['input_schema']} "
            f"in column(s) {describe_failures(failures)}.",
            columns=sorted(failures),
        )
    return valid


def inputs_of(config: dict[str, Any]) -> list[str]:
    """Every input column, those left out of drift included (older bentos: the drifted)."""
    return config.get("inputs") or [c["name"] for c in config["columns"]]


def _reference(bento: Bento) -> pd.DataFrame:
    import pandas as pd

    folder = bento.src / FOLDER
    return pd.read_parquet(folder / REFERENCE)


def _predict(
    bento: Bento, pipeline: Pipeline, inputs: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    with open(bento.model_file, "rb") as fh:
        model = pickle.load(fh)
    model_input = pipeline.entrypoint(inputs.copy()) if pipeline.entrypoint else inputs
    proba = model.predict_proba(model_input) if hasattr(model, "predict_proba") else None
    return np.asarray(model.predict(model_input)), proba


def _dataset(frame: pd.DataFrame, config: dict[str, Any], with_prediction: bool) -> Dataset:
    from evidently import DataDefinition, Dataset

    specs = [*config["columns"], *([config["prediction"]] if with_prediction else [])]
    definition = DataDefinition(
        numerical_columns=[c["name"] for c in specs if c["role"] == "numerical"],
        categorical_columns=[c["name"] for c in specs if c["role"] == "categorical"],
    )
    # only the compared columns: Evidently would guess a type for any other (an id, a name)
    return Dataset.from_pandas(frame[[c["name"] for c in specs]], data_definition=definition)


def _report(bento: Bento, output: str, with_prediction: bool) -> Report:
    from evidently import Report
    from evidently.cli.report import ReportConfig
    from evidently.metrics import ValueDrift

    saved = ReportConfig.load(str(bento.src / FOLDER / EVIDENTLY))
    metrics = [
        m
        for m in saved.metrics
        if with_prediction or not (isinstance(m, ValueDrift) and m.column == output)
    ]
    return Report(metrics, metadata=saved.metadata, include_tests=True)


def monitor(
    bento: str | Path,
    current: str | Path,
    *,
    html: Path | None = None,
    json_out: Path | None = None,
    target: str | None = None,
    min_rows: int = MIN_ROWS,
    max_defer_rate: float | None = None,
) -> MonitorResult:
    """Compare ``current`` with the reference of ``bento`` using its attached Evidently config.

    Args:
        bento: a store tag (``churn:latest``), a ``.bento`` file or an ``nb2prod build`` directory.
        current: a ``.csv``/``.parquet`` file of raw inputs, or a prediction log directory.
        html: where to write Evidently's HTML report.
        json_out: where to write the JSON summary.
        target: a column of ``current`` holding true outcomes; adds quality metrics.
        min_rows: the fewest current rows the drift test is run on.
        max_defer_rate: the highest share of logged rows deferred to a person (with
            ``serving.defer_below``) before the exit code is 1.

    Raises:
        BentoNotFound: ``bento`` names no bento made by nb2prod.
        MonitorError: bad input (missing file, unknown format, schema violations, too few
            rows, a target that is not the model's kind of outcome), or anything else that
            went wrong, in one sentence: never an exit code that reads as drift.
    """
    if min_rows < 1:
        raise MonitorError(f"--min-rows must be at least 1, not {min_rows}.")
    if max_defer_rate is not None and not 0 <= max_defer_rate <= 1:
        raise MonitorError(f"--max-defer-rate must be from 0 to 1, not {max_defer_rate}.")
    with _stage(f"compare {current} with the reference of {bento}"), open_bento(bento) as found:
        with _stage(f"read the monitoring config and the lifted schema of {found.tag}"):
            config = _config(found)
            pipeline = load_pipeline(found.src, found.manifest)
        data = read_current(current, found.manifest["name"])
        result, snapshot, quality_snapshot = _compare(
            found, config, pipeline, data, str(current), target, min_rows, html
        )
        defer_below = (found.manifest.get("serving") or {}).get("defer_below")
        result.deferral = deferral_summary(data.deferral(), max_defer_rate, defer_below)
        if max_defer_rate is not None and result.deferral["rate"] is None:
            result.notes.append(
                "the current data says nothing of deferral: --max-defer-rate unused"
            )
        with _stage("write the monitoring report"):
            _write(result, snapshot, html, json_out, quality_snapshot)
    return result


def _compare(
    found: Bento,
    config: dict[str, Any],
    pipeline: Pipeline,
    data: Current,
    current: str,
    target: str | None,
    min_rows: int,
    html: Path | None,
) -> tuple[MonitorResult, Snapshot, Snapshot | None]:
    """The drift (and with ``target``, quality) verdict on validated current data."""
    import pandas as pd

    frame, notes = data.frame, list(data.notes)
    truth = None
    if target is not None:
        if target not in frame.columns:
            raise MonitorError(
                f"--target {target}: current data {current} has no column `{target}`."
            )
        truth = target_values(frame[target], config, target)
    inputs = _validated(frame, found, config, pipeline.input_schema, current)
    if len(inputs) < min_rows:
        raise MonitorError(
            f"Current data {current} has {len(inputs)} row(s), too few for a drift test: it "
            f"needs at least {min_rows} (--min-rows sets that number).",
            rows=len(inputs),
            min_rows=min_rows,
        )
    notes += data.version_notes(found.manifest["version"])
    names = inputs_of(config)
    output = config["prediction"].get("name", PREDICTION)  # not an input column's name
    proba, positive = None, None
    logged = data.output(PREDICTION, names)
    if logged is not None:
        predictions = logged.to_numpy()
    elif (model := found.model_file or store_model(found.manifest["model_tag"])) is not None:
        found.model_file = model
        with _stage(f"predict on {current} with the model of {found.tag}"):
            predictions, proba = _predict(found, pipeline, inputs)
    else:
        predictions = None
        notes.append(
            "no predictions in the current data and no model here: prediction drift skipped"
        )
    classes = config.get("classes") or []
    if proba is not None and len(classes) == 2:
        positive = proba[:, 1]
    elif classes and (column := data.output(f"proba_{classes[-1]}", names)) is not None:
        positive = column.to_numpy()
    reference = _reference(found)
    with_prediction = predictions is not None
    if with_prediction:
        outputs = pd.read_parquet(found.src / FOLDER / PREDICTIONS)[PREDICTION]
        reference[output] = outputs.to_numpy()
        inputs = inputs.reset_index(drop=True)
        inputs[output] = predictions
        try:  # CSV and JSON may turn labels into other types; NaN rows (proba logs) stay
            inputs[output] = inputs[output].astype(reference[output].dtype)
        except (TypeError, ValueError):
            pass
    try:
        with quiet():
            snapshot = _report(found, output, with_prediction).run(
                _dataset(inputs, config, with_prediction),
                _dataset(reference, config, with_prediction),
            )
            summary = snapshot.dict()
    except Exception as exc:
        raise MonitorError(
            f"Evidently could not compare {current} with the reference: {exc}."
        ) from exc
    rows, prediction, share, dataset_drift = summarize(summary, config)
    known = None
    if truth is not None:
        known = outcomes(truth.reset_index(drop=True), predictions, positive, config, target)
    with _stage(f"score the outcomes in {current}"):
        # the bento's evaluation rows, when it ships them, are the reference side
        evaluated = evaluation_outcomes(found.src / FOLDER, config) if known is not None else None
        scores = quality(known, config, evaluated) if known is not None else []
    quality_snapshot = None
    if known is not None and html is not None:
        with quiet():
            quality_snapshot = quality_report(known, config, current, evaluated)
    result = MonitorResult(
        tag=found.manifest["tag"],
        current=current,
        rows=len(inputs),
        reference_rows=len(reference),
        columns=rows,
        prediction=prediction,
        drift_share=config["drift_share"],
        drifted_share=share,
        dataset_drift=dataset_drift,
        quality=scores,
        notes=notes,
        left_out=list(config.get("left_out") or []),
    )
    return result, snapshot, quality_snapshot


def _write(
    result: MonitorResult,
    snapshot: Snapshot,
    html: Path | None,
    json_out: Path | None,
    quality_snapshot: Snapshot | None = None,
) -> None:
    try:
        if html is not None:
            Path(html).parent.mkdir(parents=True, exist_ok=True)
            with quiet():
                snapshot.save_html(str(html))
            result.html = str(html)
            if quality_snapshot is not None:
                # quality has its own report: the drift reference (training rows) has no
                # outcomes; its reference side is the bento's evaluation rows, if it has them
                path = Path(html).with_name(f"{Path(html).stem}.quality.html")
                with quiet():
                    quality_snapshot.save_html(str(path))
                result.quality_html = str(path)
        if json_out is not None:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            result.json = str(json_out)
            Path(json_out).write_text(
                json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8"
            )
    except OSError as exc:
        raise MonitorError(
            f"Cannot write the monitoring report: {exc.strerror or exc} ({exc.filename})."
        ) from exc
