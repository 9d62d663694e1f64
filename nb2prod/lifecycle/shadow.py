"""``nb2prod shadow``: two bentos answer the same logged traffic offline; is the challenger fit?

The recipe: open both bentos, check they take the same inputs and do the same task, read the
traffic (the service's prediction logs, or a CSV/parquet of rows) and the outcomes, replay
the rows through each bento in its own process (``bento.replay``), compare the answers on the
rows both accepted (``comparison``), judge them against the thresholds, write the reports.

Outcomes (``target``): a CSV or parquet file with one row per traffic row, in the same order
(for logs: the order ``nb2prod monitor`` reads them, oldest file first); its only column, or
``target_column``. ``target_column`` without a file names a column of the traffic table.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento.locate import Bento, open_bento
from nb2prod.bento.replay import (
    BATCH_ROWS,
    LATENCY_ROWS,
    Replayed,
    input_columns,
    replay_bento,
    task_of,
)
from nb2prod.builder.evaluation import lower_is_better
from nb2prod.errors import BentoNotFound, MonitorError, RegistryError, ShadowError
from nb2prod.lifecycle import comparison

if TYPE_CHECKING:
    import pandas as pd

MIN_AGREEMENT = 0.95  # classifiers: share of rows both give the same class
RELATIVE_MEAN_ABS_DIFF = 0.1  # regressors, by default: 10% of the champion's prediction std


@dataclass
class Thresholds:
    """What the challenger must meet to pass (each a check in the report).

    ``min_agreement``: classifiers' agreement rate. ``max_mean_abs_diff``: regressors' mean
    absolute difference; None is ``RELATIVE_MEAN_ABS_DIFF`` times the standard deviation of
    the champion's predictions. ``max_extra_rejects``: rows the challenger may reject beyond
    the champion's count. ``prediction_drift``: fail when Evidently finds the distribution
    of the challenger's predictions shifted from the champion's.

    With outcomes (``--target``), the models' quality decides instead of agreement and
    prediction shift (both still reported): a model retrained on drifted data is expected
    to disagree with the old one where the world changed. Each metric the report computes
    (accuracy and roc_auc; rmse, mae and r2) may then be worse than the champion's by at
    most ``max_metric_drop``.
    """

    min_agreement: float = MIN_AGREEMENT
    max_mean_abs_diff: float | None = None
    max_extra_rejects: int = 0
    prediction_drift: bool = True
    # with outcomes: how much worse than the champion the challenger may be on each metric
    max_metric_drop: float = 0.0


@dataclass
class Check:
    """One threshold: its figure, its bound and whether it held."""

    name: str
    value: Any
    bound: str
    passed: bool


@dataclass
class ShadowReport:
    """The comparison of a challenger with its champion on the same traffic."""

    champion: dict[str, Any]  # tag, model_version, rows, accepted, rejects, latency
    challenger: dict[str, Any]
    task: str | None
    rows: int  # traffic rows replayed
    compared: int  # rows both accepted
    agreement: dict[str, Any] | None  # classifiers: comparison.agreement
    differences: dict[str, Any] | None  # regressors: comparison.differences
    drift: dict[str, Any]
    metrics: dict[str, Any] | None  # with outcomes: champion, challenger, difference, rows
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    html: str | None = None
    json: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks"] = [asdict(c) for c in self.checks]
        return {"passed": self.passed, "exit_code": self.exit_code, **out}


def _side(replayed: Replayed) -> dict[str, Any]:
    return {
        "tag": replayed.tag,
        "model_version": replayed.model_version,
        "rows": replayed.rows,
        "accepted": replayed.accepted,
        "rejects": comparison.rejects(replayed.rejects, replayed.rows),
        "latency": replayed.latency,
        "rows_per_s": replayed.batch.get("rows_per_s"),
    }


def _open(stack: ExitStack, target: str | Path, role: str) -> Bento:
    try:
        return stack.enter_context(open_bento(target))
    except (BentoNotFound, RegistryError) as exc:  # an alias that names nothing: bad input
        raise ShadowError(f"The {role}: {exc}") from exc


def _same_inputs(champion: Bento, challenger: Bento) -> tuple[list[str], str | None]:
    ours, theirs = input_columns(champion), input_columns(challenger)
    if set(ours) != set(theirs):
        only = sorted(set(ours) ^ set(theirs))
        raise ShadowError(
            f"{champion.tag} and {challenger.tag} take different inputs (column(s) "
            f"{', '.join(only)} in one only): traffic for one is not traffic for the other."
        )
    (task, _), (other, _) = task_of(champion), task_of(challenger)
    if task and other and task != other:
        raise ShadowError(f"{champion.tag} is a {task} model and {challenger.tag} a {other} one.")
    return ours, task or other


def read_traffic(traffic: str | Path, service: str) -> tuple[pd.DataFrame, list[str]]:
    """The traffic rows (a prediction log directory, a ``.jsonl``, CSV or parquet) and notes."""
    from nb2prod.monitoring.inputs import read_current

    try:
        current = read_current(traffic, service)
    except MonitorError as exc:
        raise ShadowError(str(exc).replace("Current data", "Traffic", 1)) from exc
    return current.frame, current.notes


def read_target(
    target: str | Path | None, column: str | None, traffic: pd.DataFrame
) -> pd.Series | None:
    """The outcomes, one per traffic row (see the module docstring), or None."""
    import pandas as pd

    if target is None:
        if column is None:
            return None
        if column not in traffic.columns:
            raise ShadowError(f"The traffic has no column `{column}` to take outcomes from.")
        return traffic[column].reset_index(drop=True)
    path = Path(target)
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path)
        elif path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            raise ShadowError(f"Outcomes {path} are neither .csv nor .parquet.")
    except ShadowError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ShadowError(f"Cannot read the outcomes {path}: {first}.") from exc
    if column is None and len(table.columns) != 1:
        raise ShadowError(
            f"Outcomes {path} have {len(table.columns)} columns: name one with --target-column."
        )
    name = column or table.columns[0]
    if name not in table.columns:
        raise ShadowError(f"Outcomes {path} have no column `{name}`.")
    if len(table) != len(traffic):
        raise ShadowError(
            f"Outcomes {path} have {len(table)} rows and the traffic {len(traffic)}: they must "
            "be row for row."
        )
    return table[name].reset_index(drop=True)


def _metrics(
    outcome: pd.Series, rows: pd.Index, a: Replayed, b: Replayed, task: str | None
) -> dict[str, Any] | None:
    known = outcome.iloc[rows]
    known = known[known.notna()]
    if known.empty:
        return None
    ours = comparison.model_metrics(
        task, known, a.predictions.loc[known.index], a.proba_columns, a.classes
    )
    theirs = comparison.model_metrics(
        task, known, b.predictions.loc[known.index], b.proba_columns, b.classes
    )
    return {
        "rows": len(known),
        "champion": ours,
        "challenger": theirs,
        "difference": comparison.metric_differences(ours, theirs),
    }


def _quality_checks(metrics: dict[str, Any], limits: Thresholds) -> list[Check]:
    """With outcomes: the challenger no worse than the champion on each metric, by the margin."""
    checks = []
    for name, champion in metrics["champion"].items():
        challenger = metrics["challenger"].get(name)
        if champion is None or challenger is None:
            continue
        worse = (champion - challenger) * (-1.0 if lower_is_better(name) else 1.0)
        bound = limits.max_metric_drop
        checks.append(
            Check(
                name,
                challenger,
                f"no worse than the champion's {champion:.4g} by more than {bound:g}",
                worse <= bound,
            )
        )
    return checks


def _checks(
    report: dict[str, Any],
    a: Replayed,
    b: Replayed,
    limits: Thresholds,
    metrics: dict[str, Any] | None = None,
) -> list[Check]:
    checks = _quality_checks(metrics, limits) if metrics else []
    if checks:  # quality decides; agreement and shift stay in the report as figures
        limits = replace(limits, min_agreement=0.0, prediction_drift=False)
    if report["agreement"] is not None and limits.min_agreement > 0:
        rate = report["agreement"]["agreement"]
        bound = limits.min_agreement
        checks.append(Check("agreement", rate, f">= {bound}", rate is not None and rate >= bound))
    if report["differences"] is not None and report["differences"]["rows"]:
        diff = report["differences"]
        bound = limits.max_mean_abs_diff
        if bound is None:
            bound = RELATIVE_MEAN_ABS_DIFF * diff["champion_std"]
        checks.append(
            Check(
                "mean_abs_diff",
                diff["mean_abs_diff"],
                f"<= {bound:.6g}",
                diff["mean_abs_diff"] <= bound,
            )
        )
    extra = len(b.rejects) - len(a.rejects)
    checks.append(
        Check(
            "extra_rejects",
            extra,
            f"<= {limits.max_extra_rejects}",
            extra <= limits.max_extra_rejects,
        )
    )
    if limits.prediction_drift and report["drift"].get("drifted") is not None:
        drift = report["drift"]
        checks.append(
            Check(
                "prediction_drift",
                drift["score"],
                f"{drift['method']} threshold {drift['threshold']}",
                not drift["drifted"],
            )
        )
    return checks


def shadow(
    champion: str | Path,
    challenger: str | Path,
    traffic: str | Path,
    target: str | Path | None = None,
    *,
    target_column: str | None = None,
    thresholds: Thresholds | None = None,
    html: Path | None = None,
    json_out: Path | None = None,
    batch_rows: int = BATCH_ROWS,
    latency_rows: int = LATENCY_ROWS,
) -> ShadowReport:
    """Replay ``traffic`` through ``champion`` and ``challenger`` and compare their answers.

    Args:
        champion, challenger: anything ``open_bento`` takes (a tag, ``NAME@alias`` once the
            registry resolves aliases, a build directory, a ``.bento`` file).
        traffic: the service's prediction log directory (or one ``.jsonl``), CSV or parquet.
        target: outcomes, row for row with the traffic (see the module docstring).
        target_column: the outcome column of ``target``, or of the traffic without it.
        thresholds: what the challenger must meet (``Thresholds()`` by default).
        html, json_out: where to write the HTML page and the full JSON report.

    Raises:
        ShadowError: bad input (unreadable traffic or outcomes, a bento not found, inputs or
            tasks that differ between the two), exit code 2.
    """
    limits = thresholds or Thresholds()
    with ExitStack() as stack:
        ours, theirs = _open(stack, champion, "champion"), _open(stack, challenger, "challenger")
        columns, task = _same_inputs(ours, theirs)
        frame, notes = read_traffic(traffic, ours.manifest.get("name", ""))
        outcome = read_target(target, target_column, frame)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ShadowError(f"The traffic {traffic} lacks input column(s) {', '.join(missing)}.")
        options = {"batch_rows": batch_rows, "latency_rows": latency_rows}
        a = replay_bento(ours, frame[columns], **options)
        b = replay_bento(theirs, frame[columns], **options)
    both = a.predictions.index.intersection(b.predictions.index)
    left, right = a.predictions.loc[both, "prediction"], b.predictions.loc[both, "prediction"]
    regression = task == "regression"
    drift, snapshot = comparison.prediction_drift(left, right, task)
    if drift.get("error"):
        notes.append(f"the prediction shift was not computed ({drift['error']})")
    quality = _metrics(outcome, both, a, b, task) if outcome is not None else None
    report = {
        "agreement": None if regression else comparison.agreement(left, right),
        "differences": comparison.differences(left, right) if regression else None,
        "drift": drift,
    }
    report = ShadowReport(
        champion=_side(a),
        challenger=_side(b),
        task=task,
        rows=len(frame),
        compared=len(both),
        metrics=quality,
        checks=_checks(report, a, b, limits, quality),
        notes=notes,
        **report,
    )
    _write(report, snapshot, html, json_out)
    return report


def _write(report: ShadowReport, snapshot: Any, html: Path | None, json_out: Path | None) -> None:
    from nb2prod.lifecycle.shadow_show import html_page

    try:
        if html is not None:
            Path(html).parent.mkdir(parents=True, exist_ok=True)
            report.html = str(html)
            evidently = snapshot.get_html_str(as_iframe=False) if snapshot is not None else None
            Path(html).write_text(html_page(report, evidently), encoding="utf-8")
        if json_out is not None:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            report.json = str(json_out)
            text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
            Path(json_out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ShadowError(
            f"Cannot write the shadow report: {exc.strerror or exc} ({exc.filename})."
        ) from exc
