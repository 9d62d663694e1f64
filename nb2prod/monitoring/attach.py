"""Monitoring attached at build time: validated reference data and the Evidently drift config."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento.locate import load_pipeline
from nb2prod.errors import NotebookError, ReferenceInvalid
from nb2prod.monitoring.columns import check_ignore, describe, left_out

if TYPE_CHECKING:
    import pandas as pd
    from evidently.legacy.calculations.stattests.registry import StatTest
    from pandera.api.pandas.container import DataFrameSchema

    from nb2prod.builder.training import TrainingResult
    from nb2prod.notebook.read import Settings

log = logging.getLogger(__name__)

FOLDER = "monitoring"
REFERENCE = "reference.parquet"
PREDICTIONS = "predictions.parquet"
CONFIG = "config.json"  # nb2prod's view: roles, methods, thresholds, training metrics
EVIDENTLY = "evidently.json"  # evidently.cli.report.ReportConfig; ReportConfig.load() reads it
LOG_DIR_ENV = "NB2PROD_LOG_DIR"
REFERENCE_ROWS = 5000
SEED = 0
# Evidently's own default: the data set drifts when half the input columns do. With one
# column's share (1/n), one of ten p-value tests at 5% fires on about 40% of fresh batches of
# the training distribution itself (docs/monitoring.md, "Choosing the drift share").
DRIFT_SHARE = 0.5
SETTINGS = (
    "reference_rows",
    "method",
    "num_method",
    "cat_method",
    "threshold",
    "drift_share",
    "columns",
    "ignore",
    "prediction",
)
COLUMN_SETTINGS = ("method", "threshold", "role")
ROLES = ("numerical", "categorical")
PREDICTION = "prediction"


def column_roles(schema: DataFrameSchema) -> dict[str, str]:
    """``numerical`` or ``categorical`` per schema column, from its dtype and checks.

    Strings, booleans and categories are categorical; so is any column with an ``isin``
    check (a coded number such as ``sex: isin=[1.0, 2.0]``). Other numbers are numerical.
    """
    roles = {}
    for name, column in schema.columns.items():
        dtype = str(column.dtype).lower()
        numeric = any(k in dtype for k in ("int", "float", "decimal")) and "bool" not in dtype
        coded = any(getattr(c, "name", "") == "isin" for c in column.checks)
        roles[name] = "numerical" if numeric and not coded else "categorical"
    return roles


def declared(schema: DataFrameSchema) -> set[str]:
    """The columns whose values the schema lists (an ``isin`` check): categories, never ids."""
    return {
        name
        for name, column in schema.columns.items()
        if any(getattr(c, "name", "") == "isin" for c in column.checks)
    }


def schema_failures(
    schema: DataFrameSchema, frame: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Validate ``frame`` lazily; return the coerced frame and, per failing column, the
    failure count per check (``(table)`` for a failure that names no column)."""
    import pandas as pd
    from pandera.errors import SchemaError, SchemaErrors

    try:
        return schema.validate(frame, lazy=True), {}
    except (SchemaError, SchemaErrors) as exc:
        cases = getattr(exc, "failure_cases", None)
        failures: dict[str, dict[str, int]] = {}
        if cases is None or not hasattr(cases, "iterrows"):
            column = str(getattr(exc, "column_name", None) or "?")
            check = getattr(getattr(exc, "check", None), "name", None) or "?"
            return frame, {column: {str(check): 1}}
        for _, case in cases.iterrows():
            column, check = case.get("column"), case.get("check")
            if check in ("column_in_dataframe", "column_in_schema"):
                column = case.get("failure_case")
            key = "(table)" if column is None or pd.isna(column) else str(column)
            name = "?" if check is None or pd.isna(check) else str(check)
            per_check = failures.setdefault(key, {})
            per_check[name] = per_check.get(name, 0) + 1
        return frame, failures


def describe_failures(failures: dict[str, dict[str, int]], *, checks: bool = False) -> str:
    """``tenure_months (2 failure(s))``, or with ``checks`` ``tenure_months (check is_recent:
    2 failure(s))``, for each column, joined by commas."""
    parts = []
    for column, per_check in sorted(failures.items()):
        if checks:
            named = "; ".join(f"check {c}: {n} failure(s)" for c, n in sorted(per_check.items()))
            parts.append(f"{column} ({named})")
        else:
            parts.append(f"{column} ({sum(per_check.values())} failure(s))")
    return ", ".join(parts)


def valid_reference(
    schema: DataFrameSchema, reference: pd.DataFrame, where: str, setting: str, schema_name: str
) -> pd.DataFrame:
    """The reference data, validated (and coerced) by the notebook's own input schema.

    Raises:
        ReferenceInvalid: some rows fail it; the message names the columns and checks.
    """
    valid, failures = schema_failures(schema, reference)
    if failures:
        raise ReferenceInvalid(
            f"{where}: the reference data `{setting}` fails the notebook's own input schema "
            f"{schema_name} in column(s) {describe_failures(failures, checks=True)}; fix the "
            "data or the schema.",
            columns=sorted(failures),
            checks=sorted({c for per_check in failures.values() for c in per_check}),
        )
    return valid


def _stattest(method: str, role: str, column: str, where: str) -> StatTest:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    try:
        return get_registered_stattest(method, ColumnType[role.capitalize()])
    except Exception as exc:
        raise NotebookError(
            f"{where}: drift method `{method}` for column `{column}` ({role}) is not an Evidently "
            f"drift method for {role} data ({exc}); see docs/monitoring.md for the names.",
            column=column,
        ) from exc


def _default_stattest(series: pd.Series, role: str) -> StatTest:
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType

    return _get_default_stattest(series, series, ColumnType[role.capitalize()])


def _check_settings(settings: dict[str, Any], columns: list[str], where: str) -> None:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise NotebookError(
            f"{where}: notebook setting nb2prod.monitoring has unknown key(s) {', '.join(unknown)}; "
            f"known keys are {', '.join(SETTINGS)}."
        )
    per_column = settings.get("columns") or {}
    for column, spec in per_column.items():
        if column not in columns:
            raise NotebookError(
                f"{where}: nb2prod.monitoring.columns names `{column}`, which is not an input "
                f"column; the input columns are {', '.join(columns)}.",
                column=column,
            )
        bad = (
            sorted(set(spec) - set(COLUMN_SETTINGS))
            if isinstance(spec, dict)
            else ["(not a mapping)"]
        )
        if bad or (isinstance(spec, dict) and spec.get("role", "numerical") not in ROLES):
            raise NotebookError(
                f"{where}: nb2prod.monitoring.columns.{column} may only set "
                f"{', '.join(COLUMN_SETTINGS)} (role: numerical or categorical).",
                column=column,
            )
    check_ignore(settings.get("ignore"), columns, where)
    share = settings.get("drift_share")
    if share is not None and not (isinstance(share, (int, float)) and 0 < share <= 1):
        raise NotebookError(f"{where}: nb2prod.monitoring.drift_share must be a number in (0, 1].")


def output_column(inputs: list[str]) -> str:
    """The model output's column in the drift data: ``prediction``, or, when an input column
    has that name, ``_prediction`` (with as many underscores as it takes to be unique)."""
    name = PREDICTION
    while name in inputs:
        name = f"_{name}"
    return name


def _drift_spec(
    column: str, role: str, series: pd.Series, spec: dict, settings: dict, where: str
) -> dict:
    method = spec.get("method") or settings.get(f"{role[:3]}_method") or settings.get("method")
    test = _stattest(method, role, column, where) if method else _default_stattest(series, role)
    if role == "numerical" and "num" not in {
        str(getattr(t, "value", t)) for t in test.allowed_feature_types
    }:
        # Evidently compares a number with at most five values as categories (chi², Z):
        # run it as one, or the saved report refuses its own default method
        role = "categorical"
    threshold = spec.get("threshold", settings.get("threshold"))
    return {
        "name": column,
        "role": role,
        "method": test.name,
        "method_name": test.display_name,
        "threshold": float(test.default_threshold if threshold is None else threshold),
        "method_source": "notebook" if method else "evidently default",
    }


def drift_config(
    settings: dict[str, Any],
    roles: dict[str, str],
    reference: pd.DataFrame,
    predictions: pd.DataFrame,
    task: str,
    where: str,
    keep: set[str] | None = None,
) -> dict[str, Any]:
    """The monitoring config: per-column role, method and threshold; drift share; prediction.

    Methods the notebook does not name are Evidently's defaults for this reference data,
    resolved here so the bento records exactly what ``nb2prod monitor`` will run. ID-like and
    free-text columns, and those in ``ignore``, are left out (``left_out``, with the reason);
    columns in ``keep`` or ``columns`` are never detected as such.
    """
    _check_settings(settings, list(roles), where)
    per_column = settings.get("columns") or {}
    ignore = list(settings.get("ignore") or [])
    skipped = left_out(reference, roles, ignore, set(keep or ()) | set(per_column))
    if skipped:
        log.info("monitoring leaves out %s", describe([c.to_dict() for c in skipped]))
    out = {c.name for c in skipped}
    columns = []
    for column, role in roles.items():
        if column in out:
            continue
        spec = per_column.get(column) or {}
        role = spec.get("role", role)
        columns.append(_drift_spec(column, role, reference[column], spec, settings, where))
    share = settings.get("drift_share")
    prediction_role = "categorical" if task == "classification" else "numerical"
    prediction = _drift_spec(
        output_column(list(roles)),
        prediction_role,
        predictions[PREDICTION],
        settings.get("prediction") or {},
        {},
        where,
    )
    return {
        "columns": columns,
        "inputs": list(roles),
        "left_out": [c.to_dict() for c in skipped],
        "prediction": prediction,
        # Evidently's rule: the data set drifts when the drifted share is >= drift_share.
        "drift_share": float(share) if share is not None else DRIFT_SHARE,
        "drift_share_source": "notebook" if share is not None else "evidently default",
        "task": task,
        "reference_rows": len(reference),
    }


def report_config(config: dict[str, Any]) -> Any:
    """The Evidently ``ReportConfig`` for ``config``: a drift preset plus prediction drift."""
    from evidently.cli.report import ReportConfig
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = config["columns"]
    prediction = config["prediction"]
    inputs = [
        DataDriftPreset(
            columns=[c["name"] for c in columns],
            drift_share=config["drift_share"],
            per_column_method={c["name"]: c["method"] for c in columns},
            per_column_threshold={c["name"]: c["threshold"] for c in columns},
        )
    ]
    return ReportConfig(
        # with every input left out, only the model output is compared
        metrics=[
            *(inputs if columns else []),
            ValueDrift(
                column=prediction["name"],
                method=prediction["method"],
                threshold=prediction["threshold"],
            ),
        ],
        include_tests=True,
        metadata={"nb2prod.config": CONFIG},
    )


def _sample(
    reference: pd.DataFrame, predictions: pd.DataFrame, cap: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if len(reference) <= cap:
        return reference, predictions
    keep = reference.sample(n=cap, random_state=SEED).index.sort_values()
    return reference.loc[keep].reset_index(drop=True), predictions.loc[keep].reset_index(drop=True)


def _evaluation(
    folder: Path, training: TrainingResult, schema: DataFrameSchema, manifest: dict, cap: int
) -> list[str]:
    """Ship the evaluation rows (validated by the input schema, sampled to ``cap``) and add
    ``manifest["evaluation"]``; the files written.

    Raises:
        ReferenceInvalid: some evaluation rows fail the input schema, and the notebook named
            them (by default, ``X_test`` rows that fail it are not shipped, with a warning).
    """
    import pandas as pd

    from nb2prod.builder import evaluation as ev

    path = getattr(training, "evaluation_file", None)  # None: the notebook has none
    if path is None:
        return []
    frame = pd.read_parquet(path)
    names, raw = training.evaluation, ev.inputs(frame)
    valid, failures = schema_failures(schema, raw)
    if failures and not names.get("required", True):  # X_test by default: not the inputs
        log.warning(
            "no evaluation data shipped: %s fails the input schema in %s",
            names["X"],
            describe_failures(failures),
        )
        return []
    if failures:
        raise ReferenceInvalid(
            f"{manifest['notebook']}: the evaluation data `{names['X']}` (nb2prod.evaluation) "
            f"fails the notebook's own input schema {manifest['input_schema']} in column(s) "
            f"{describe_failures(failures, checks=True)}; fix the data or the schema.",
            columns=sorted(failures),
        )
    frame = pd.concat([valid, frame.drop(columns=list(raw.columns))], axis=1)
    if len(frame) > cap:
        frame = frame.sample(n=cap, random_state=SEED).sort_index().reset_index(drop=True)
    frame.to_parquet(folder / ev.FILE, index=False)
    columns = {"target_column": ev.TARGET, "prediction_column": ev.PREDICTION}
    manifest["evaluation"] = {"file": f"{FOLDER}/{ev.FILE}", "rows": len(frame), **columns}
    manifest["evaluation"] |= {"proba_prefix": ev.PROBA, "X": names["X"], "y": names["y"]}
    return [ev.FILE]


def attach(
    src: Path, training: TrainingResult, settings: Settings, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Write ``src/monitoring/`` for a build and add its entry to the manifest.

    The reference is the training run's raw inputs (the ``reference`` setting), validated
    against the input schema and sampled to ``monitoring.reference_rows``, with the model's
    predictions on the same rows.

    Raises:
        NotebookError: a monitoring setting is malformed.
        ReferenceInvalid: the reference data fails the notebook's own input schema.
    """
    import pandas as pd

    where = manifest["notebook"]
    options = dict(settings.monitoring or {})
    pipeline = load_pipeline(src, manifest)
    reference = pd.read_parquet(training.reference_file)
    predictions = pd.read_parquet(training.predictions_file)
    valid = valid_reference(
        pipeline.input_schema, reference, where, settings.reference, manifest["input_schema"]
    )
    cap = int(options.get("reference_rows", REFERENCE_ROWS))
    reference, predictions = _sample(valid.reset_index(drop=True), predictions, cap)
    task = "classification" if training.classes else "regression"
    roles = column_roles(pipeline.input_schema)
    config = drift_config(
        options, roles, reference, predictions, task, where, declared(pipeline.input_schema)
    )
    config.update(
        {
            "name": manifest["name"],
            "version": manifest["version"],
            "metrics": manifest.get("metrics", {}),
            "gates": manifest.get("gates", []),
            "classes": list(training.classes),
            "log_dir_env": LOG_DIR_ENV,
        }
    )
    folder = src / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(folder / REFERENCE, index=False)
    predictions.to_parquet(folder / PREDICTIONS, index=False)
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    report_config(config).save(str(folder / EVIDENTLY))
    shipped = _evaluation(folder, training, pipeline.input_schema, manifest, cap)
    entry = {
        "files": [f"{FOLDER}/{f}" for f in (REFERENCE, PREDICTIONS, CONFIG, EVIDENTLY, *shipped)],
        "reference_rows": len(reference),
        "drift_share": config["drift_share"],
        "left_out": config["left_out"],
        "log_dir_env": LOG_DIR_ENV,
    }
    manifest["monitoring"] = entry
    if getattr(settings, "promotion", None):  # what nb2prod promote compares, and the margin
        manifest["promotion"] = dict(settings.promotion)
    log.info("monitoring attached: %d reference rows, %d columns", len(reference), len(roles))
    return entry
