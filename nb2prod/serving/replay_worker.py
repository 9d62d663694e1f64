"""Replay rows through one bento's own service path, in a process of its own.

``nb2prod.bento.replay`` runs this file by path (``python -P replay_worker.py REQUEST``) with
the bento's ``src/`` as working directory and first on ``sys.path``. It imports only that
bento's modules: ``nb2prod_validation`` (the fast path, then Pandera, as the service's
``_validated``), ``lifted.schema``, ``lifted.features``, ``nb2prod_runtime`` (``check_features``,
``call_model``, ``check_outputs``) and ``nb2prod_compiled`` when the bento serves compiled,
with the constants of its generated ``service.py`` (read, not imported: it needs the store).
It is not copied into bentos: it needs nothing a bento built before it lacks.

REQUEST is a JSON file: ``src``, ``model_file``, ``input`` (parquet of input rows),
``output`` (a directory), ``proba``, ``batch_rows``, ``latency_rows``. It writes
``predictions.parquet`` (``row``: the input position, ``prediction``, ``proba_<class>``) and
``result.json`` (``RESULT_FIELDS``). A setup failure is one line on stderr and exit 3.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULT_FIELDS = ("tag", "model_version", "rows", "accepted", "rejects", "latency", "batch")
SETUP_FAILED = 3


def constants(service: Path) -> dict[str, Any]:
    """The literal module-level constants of a generated ``service.py`` (INPUT_COLUMNS, ...)."""
    found: dict[str, Any] = {}
    try:
        tree = ast.parse(service.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return found
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue  # computed at import (INPUT_SCHEMA, ...)
    return found


class Bento:
    """The bento's path, as its service runs it: validate, features, model."""

    def __init__(self, src: Path, model_file: str) -> None:
        self.validation = importlib.import_module("nb2prod_validation")
        self.runtime = importlib.import_module("nb2prod_runtime")
        self.manifest = json.loads((src / "nb2prod.json").read_text(encoding="utf-8"))
        known = constants(src / "service.py")
        self.version = known.get("MODEL_VERSION", self.manifest.get("version"))
        self.columns = known.get("INPUT_COLUMNS") or self.manifest["reference"]["columns"]
        self.lenient = bool(known.get("LENIENT", False))
        self.outputs = known.get("OUTPUT_COLUMNS") or {"predict": ["prediction"]}
        threads = int(known.get("MODEL_THREADS", 1))
        model = getattr(importlib.import_module("lifted.schema"), self.manifest["input_schema"])
        self.schema = model.to_schema()
        entry = self.manifest.get("entrypoint")
        features = importlib.import_module("lifted.features") if entry else None
        self.entrypoint = getattr(features, entry) if features else None
        limit = getattr(self.runtime, "_limit_threads", None)
        if limit is not None:
            limit(threads)  # the model thread's setting in the service
        self.model = self._load(model_file, threads)

    def _load(self, path: str, threads: int) -> Any:
        import pickle

        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if (self.manifest.get("serving") or {}).get("runtime") != "compiled":
            return model
        return importlib.import_module("nb2prod_compiled").load(path, model, threads=threads)

    def validate(self, rows: list[dict[str, Any]]) -> tuple[Any, list]:
        """One request's rows: the validated frame, or the 422 body's failures."""
        return self.validation.validate(self.schema, rows, self.columns, lenient=self.lenient)

    def predict(self, frame: Any, proba: bool) -> dict[str, Any]:
        """The model's outputs for a validated frame, as the service's model runner gives them."""
        import numpy as np

        features = self.entrypoint(frame) if self.entrypoint else frame
        self.runtime.check_features(features)
        out = {}
        methods = [
            "predict",
            *(["predict_proba"] if proba and "predict_proba" in self.outputs else []),
        ]
        for method in methods:
            values = np.asarray(self.runtime.call_model(self.model, method, features))
            self.runtime.check_outputs(values, self.outputs[method])
            out[method] = values
        return out


def _judge(bento: Bento, rows: list[dict], positions: list[int], rejects: list) -> list:
    """Validate ``rows`` as one request; when it fails, split it as if each row came alone.

    Rows the failures name are sent alone (their 422 is the one they get alone), the rest
    together again; a failure with no row (a column) splits the request in halves.
    """
    accepted, todo = [], [(rows, positions)]
    while todo:
        part, where = todo.pop()
        frame, failures = bento.validate(part)
        if not failures:
            if len(frame):
                accepted.append((frame, where))
            continue
        if len(part) == 1:
            rejects.append({"row": where[0], "status": 422, "failures": list(failures)})
            continue
        named = {f["row"] for f in failures}
        if None in named or not named <= set(range(len(part))):
            half = len(part) // 2
            todo += [(part[:half], where[:half]), (part[half:], where[half:])]
            continue
        rest = [i for i in range(len(part)) if i not in named]
        todo += [([part[i]], [where[i]]) for i in sorted(named)]
        if rest:
            todo.append(([part[i] for i in rest], [where[i] for i in rest]))
    return accepted


def _run(bento: Bento, frame: Any, where: list[int], proba: bool, rejects: list) -> list:
    """The model on a validated frame; a row whose features or output is not finite (or that
    raises) is answered alone, as the service's batcher answers only the culprit."""
    done, todo = [], [(frame, where)]
    while todo:
        part, rows = todo.pop()
        try:
            done.append((bento.predict(part, proba), rows))
            continue
        except bento.runtime.NonFinite as exc:
            if len(rows) == 1:
                rejects.append({"row": rows[0], "status": 422, "failures": [exc.failure]})
                continue
            bad = exc.row if 0 <= exc.row < len(rows) else 0
        except Exception as exc:  # noqa: BLE001 - the service answers 500 to that request
            if len(rows) == 1:
                error = f"{type(exc).__name__}: {exc}"
                rejects.append({"row": rows[0], "status": 500, "error": error, "failures": []})
                continue
            bad = None
        if bad is None:
            half = len(rows) // 2
            todo += [(part.iloc[:half].reset_index(drop=True), rows[:half])]
            todo += [(part.iloc[half:].reset_index(drop=True), rows[half:])]
            continue
        keep = [i for i in range(len(rows)) if i != bad]
        todo.append((part.iloc[[bad]].reset_index(drop=True), [rows[bad]]))
        todo.append((part.iloc[keep].reset_index(drop=True), [rows[i] for i in keep]))
    return done


def _latency(bento: Bento, sample: list[dict], count: int) -> dict[str, Any]:
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

    bento = Bento(Path(request["src"]), request["model_file"])
    proba, batch_rows = bool(request["proba"]), int(request["batch_rows"])
    out = Path(request["output"])
    rejects: list[dict] = []
    sample: list[dict] = []
    writer, position, accepted, started = None, 0, 0, time.perf_counter()
    for batch in pq.ParquetFile(request["input"]).iter_batches(batch_size=batch_rows):
        rows = batch.to_pylist()
        positions = list(range(position, position + len(rows)))
        position += len(rows)
        for frame, where in _judge(bento, rows, positions, rejects):
            for outputs, done in _run(bento, frame, where, proba, rejects):
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
