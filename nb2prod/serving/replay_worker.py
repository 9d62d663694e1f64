"""Replay rows through one bento's own service path, in a process of its own.

``nb2prod.bento.replay`` runs this file by path (``python -P replay_worker.py REQUEST``) with
the bento's ``src/`` as working directory and first on ``sys.path``. The path is
``scoring.py``'s ``Scorer`` (loaded by path from beside this file): the bento's own
validation, lifted features, model and thread setting. It imports only that bento's modules,
and is not copied into bentos: it needs nothing a bento built before it lacks.

REQUEST is a JSON file: ``src``, ``model_file``, ``input`` (parquet of input rows),
``output`` (a directory), ``proba``, ``batch_rows``, ``latency_rows``. It writes
``predictions.parquet`` (``row``: the input position, ``prediction``, ``proba_<class>``) and
``result.json`` (``RESULT_FIELDS``). A setup failure is one line on stderr and exit 3.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULT_FIELDS = ("tag", "model_version", "rows", "accepted", "rejects", "latency", "batch")
SETUP_FAILED = 3


def _scoring() -> Any:
    """``scoring.py`` beside this file, loaded by path: run as a script, nb2prod may not be
    importable (``-P``), and the bento's src/ is first on sys.path."""
    name = "nb2prod_scoring"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("scoring.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


scoring = _scoring()
constants = scoring.constants  # the generated service.py's literal constants


def _latency(bento: Any, sample: list[dict], count: int) -> dict[str, Any]:
    """Each of the first ``count`` accepted rows as a one-row /predict, timed in-process."""
    import numpy as np

    if sample:
        frame, _ = bento.validate(sample[:1])  # warm up: lazy imports, the first session run
        if len(frame):
            bento.predict(frame, False)
    times = []
    for row in sample[:count]:
        start = time.perf_counter()
        frame, failures = bento.validate([row])
        if not failures:
            bento.predict(frame, False)
        times.append((time.perf_counter() - start) * 1000)
    ms = np.asarray(times) if times else np.asarray([np.nan])
    return {
        "requests": len(times),
        "p50_ms": float(np.median(ms)) if times else None,
        "p90_ms": float(np.percentile(ms, 90)) if times else None,
        "mean_ms": float(ms.mean()) if times else None,
        "method": "one-row requests (validate, features, predict) in the bento's process",
    }


def replay(request: dict[str, Any]) -> dict[str, Any]:
    """Replay the request's rows; write the predictions; return the result (RESULT_FIELDS)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    bento = scoring.Scorer(Path(request["src"]), Path(request["model_file"]), proba=True)
    proba, batch_rows = bool(request["proba"]), int(request["batch_rows"])
    out = Path(request["output"])
    rejects: list[dict] = []
    sample: list[dict] = []
    writer, position, accepted, started = None, 0, 0, time.perf_counter()
    for batch in pq.ParquetFile(request["input"]).iter_batches(batch_size=batch_rows):
        rows = batch.to_pylist()
        positions = list(range(position, position + len(rows)))
        position += len(rows)
        for outputs, done in bento.answer(rows, positions, proba, rejects):
            table = {"row": np.asarray(done, dtype=np.int64)}
            table["prediction"] = outputs["predict"].reshape(len(done), -1)[:, 0]
            for i, name in enumerate(bento.outputs.get("predict_proba", [])):
                if "predict_proba" in outputs:
                    table[name] = outputs["predict_proba"].reshape(len(done), -1)[:, i]
            part = pa.Table.from_pandas(pd.DataFrame(table), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out / "predictions.parquet", part.schema)
            writer.write_table(part.cast(writer.schema))
            accepted += len(done)
            if len(sample) < int(request["latency_rows"]):
                sample += [rows[p - positions[0]] for p in done[: request["latency_rows"]]]
    seconds = time.perf_counter() - started
    if writer is not None:
        writer.close()
    return {
        "tag": bento.manifest.get("tag"),
        "model_version": bento.version,
        "rows": position,
        "accepted": accepted,
        "rejects": sorted(rejects, key=lambda r: r["row"]),
        "latency": _latency(bento, sample, int(request["latency_rows"])),
        "batch": {"rows": batch_rows, "seconds": seconds, "rows_per_s": position / seconds},
        "proba_columns": bento.outputs.get("predict_proba") if proba else None,
    }


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    src = Path(request["src"])
    sys.path.insert(0, str(src))
    os.chdir(src)
    try:
        bento_result = replay(request)
    except (ImportError, OSError, KeyError, AttributeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        sys.stderr.write(f"{type(exc).__name__}: {first}\n")
        return SETUP_FAILED
    text = json.dumps(bento_result, default=str)
    (Path(request["output"]) / "result.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
