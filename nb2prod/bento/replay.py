"""Replay a table of rows through a bento's own service path, offline, in a process of its own.

``replay(target, frame)`` answers each row as ``POST /predict`` on the served bento would:
the bento's validation (fast path, then Pandera; a row's failures are the 422 body's for
that row sent alone), its lifted features, its model (the runtime it serves, compiled or
pickle), with the service's thread setting. The work runs in a subprocess of this interpreter
(``nb2prod/serving/replay_worker.py``) with the bento's ``src/`` first on ``sys.path``, so
two bentos never share an imported module; rows and predictions travel as parquet files in
a temporary directory.

Rows go in batches of ``batch_rows`` (one request each); a batch that fails validation is
split so that only the rows at fault are rejected, as each row alone would be. Latency is
measured apart: the first ``latency_rows`` accepted rows are sent again one row per request,
timed inside the bento's process (validate, features, predict; no HTTP), after one warm-up.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento.locate import Bento, model_file, open_bento
from nb2prod.errors import BentoNotFound, RegistryError, ShadowError
from nb2prod.serving import replay_worker

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
WORKER = Path(replay_worker.__file__)
BATCH_ROWS = 256  # rows per replayed request
LATENCY_ROWS = 200  # one-row requests timed for the latency figures
TIMEOUT = 3600.0  # seconds one bento's replay may take


@dataclass
class Replayed:
    """One bento's answers to a table of rows.

    ``predictions`` is indexed by input row position and holds the accepted rows only:
    ``prediction`` and, for a model with ``predict_proba`` (and ``proba=True``), one
    ``proba_<class>`` column per class. ``rejects`` lists the others, in row order, as
    ``{"row": i, "status": 422, "failures": [...]}`` (the 422 body's ``failures`` for that
    row sent alone; ``row`` inside a failure is 0, the request's own row) or ``{"row": i,
    "status": 500, "error": "...", "failures": []}`` when the notebook's code raised.
    ``latency`` has ``requests``, ``p50_ms``, ``p90_ms``, ``mean_ms`` and ``method``;
    ``batch`` has ``rows`` (per request), ``seconds`` and ``rows_per_s`` of the whole pass.
    """

    tag: str
    model_version: str
    name: str
    rows: int
    predictions: pd.DataFrame
    rejects: list[dict[str, Any]]
    latency: dict[str, Any]
    batch: dict[str, Any]
    input_columns: list[str]
    task: str | None = None  # "classification" or "regression" (the bento's monitoring config)
    classes: list[Any] | None = None
    proba_columns: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.predictions)

    @property
    def rejected_rows(self) -> list[int]:
        return [r["row"] for r in self.rejects]


def input_columns(bento: Bento) -> list[str]:
    """The columns the bento's service takes, in its order (service.py's INPUT_COLUMNS)."""
    known = replay_worker.constants(bento.src / "service.py")
    return list(known.get("INPUT_COLUMNS") or bento.manifest["reference"]["columns"])


def task_of(bento: Bento) -> tuple[str | None, list[Any] | None]:
    """The model's task and classes, from its monitoring config (None when it has none)."""
    path = bento.src / "monitoring" / "config.json"
    if not path.is_file():
        return None, None
    config = json.loads(path.read_text(encoding="utf-8"))
    return config.get("task"), config.get("classes")


def replay(
    target: str | Path,
    frame: pd.DataFrame,
    *,
    proba: bool = True,
    batch_rows: int = BATCH_ROWS,
    latency_rows: int = LATENCY_ROWS,
) -> Replayed:
    """Answer every row of ``frame`` as the bento ``target``'s ``/predict`` would, offline.

    Args:
        target: anything ``open_bento`` takes (a tag, a build directory, a ``.bento`` file).
        frame: the rows; the bento's input columns are taken, any others ignored.
        proba: also give class probabilities (when the model has ``predict_proba``).
        batch_rows: rows per replayed request.
        latency_rows: how many accepted rows are timed as one-row requests.

    Raises:
        ShadowError: no such bento (or alias), its model is missing, ``frame`` lacks an input column, or
            the bento's code cannot be loaded.
    """
    try:
        with open_bento(target) as bento:
            return replay_bento(
                bento, frame, proba=proba, batch_rows=batch_rows, latency_rows=latency_rows
            )
    except (BentoNotFound, RegistryError) as exc:
        raise ShadowError(str(exc)) from exc


def replay_bento(
    bento: Bento,
    frame: pd.DataFrame,
    *,
    proba: bool = True,
    batch_rows: int = BATCH_ROWS,
    latency_rows: int = LATENCY_ROWS,
) -> Replayed:
    """:func:`replay` on a bento already open (``open_bento``)."""
    import pandas as pd

    if batch_rows < 1:
        raise ShadowError(f"batch_rows must be at least 1, not {batch_rows}.")
    columns = input_columns(bento)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ShadowError(
            f"The rows lack input column(s) {', '.join(missing)} of {bento.tag}.", columns=missing
        )
    task, classes = task_of(bento)
    with tempfile.TemporaryDirectory(prefix="nb2prod-replay-") as tmp:
        work = Path(tmp)
        _write_rows(frame[columns].reset_index(drop=True), work / "rows.parquet")
        request = {
            "src": str(bento.src),
            "model_file": str(model_file(bento)),
            "input": str(work / "rows.parquet"),
            "output": str(work),
            "proba": proba,
            "batch_rows": batch_rows,
            "latency_rows": latency_rows,
        }
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        _run_worker(bento, work / "request.json")
        result = json.loads((work / "result.json").read_text(encoding="utf-8"))
        out = work / "predictions.parquet"
        predictions = pd.read_parquet(out) if out.is_file() else pd.DataFrame({"row": []})
    predictions = predictions.set_index("row").sort_index()
    predictions.index = predictions.index.astype("int64")
    predictions.index.name = None
    if "prediction" not in predictions.columns:
        predictions["prediction"] = pd.Series(dtype=float)
    return Replayed(
        tag=result["tag"] or bento.tag,
        model_version=str(result["model_version"]),
        name=bento.manifest.get("name", ""),
        rows=int(result["rows"]),
        predictions=predictions,
        rejects=result["rejects"],
        latency=result["latency"],
        batch=result["batch"],
        input_columns=columns,
        task=task,
        classes=classes,
        proba_columns=list(result.get("proba_columns") or []),
    )


def _write_rows(frame: pd.DataFrame, path: Path) -> None:
    try:
        frame.to_parquet(path, index=False)
    except Exception as exc:  # pyarrow: a column of mixed types (a log with "12" and 12)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ShadowError(f"Cannot pass the rows to the bento as parquet: {first}.") from exc


def _run_worker(bento: Bento, request: Path) -> None:
    # -P: the worker's own folder (nb2prod/serving) is not put on sys.path; the bento's is.
    env = {**os.environ, "NB2PROD_LOG_DIR": "off"}
    try:
        done = subprocess.run(
            [sys.executable, "-P", str(WORKER), str(request)],
            cwd=bento.src,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ShadowError(f"Replaying through {bento.tag} took over {TIMEOUT:.0f} s.") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        log.debug("replay worker of %s failed:\n%s", bento.tag, done.stderr)
        last = lines[-1].rstrip(".") if lines else f"exit code {done.returncode}"
        raise ShadowError(f"Replaying through {bento.tag} failed in its own code ({last}).")
