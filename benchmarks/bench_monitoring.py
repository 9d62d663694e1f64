"""What monitoring costs: ``nb2prod monitor`` on 1M x 20 vs a bare Evidently run, and the sink.

Run: ``python -m benchmarks.bench_monitoring [--rows 1000000] [--serve TAG] [--out DIR]``.

- *monitor*: a 20-column build directory (14 numerical, 6 categorical columns; 5000
  reference rows) is made with nb2prod's own ``monitoring.attach``. ``nb2prod monitor`` then
  runs on a parquet file of ``--rows`` current rows, and so does a bare Evidently ``Report``
  with the same metrics on the same frames. Each runs in a fresh process, so that peak RSS is
  its own. Both write the HTML report.
- *sink*: the cost of ``sink.log()`` on the request path, with the writer thread running.
- *served* (with ``--serve TAG``): single-row ``/predict`` latency of a served bento, with
  logging off and on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

NUMERIC, CATEGORICAL = 14, 6
LEVELS = ["a", "b", "c", "d", "e"]

SCHEMA = '''"""Synthetic 20-column input schema for the monitoring benchmark."""
import pandera.pandas as pa
from pandera.typing import Series

LEVELS = {levels!r}


class Row(pa.DataFrameModel):
{fields}

    class Config:
        coerce = True
'''


def frame(rows: int, seed: int, shift: float = 0.0) -> Any:
    """``rows`` synthetic rows; ``shift`` moves x0 and the share of level "a" in c0."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(i, 1 + i / 10, rows) for i in range(NUMERIC)}
    data["x0"] = data["x0"] + shift
    for j in range(CATEGORICAL):
        p = [0.4, 0.2, 0.2, 0.1, 0.1] if not (shift and j == 0) else [0.1, 0.2, 0.2, 0.1, 0.4]
        data[f"c{j}"] = rng.choice(LEVELS, rows, p=p)
    out = pd.DataFrame(data)
    out["prediction"] = ((out["x1"] > 1) ^ (out["c1"] == "a")).astype(int)
    return out


def make_build(root: Path) -> Path:
    """A build directory for the synthetic model, monitoring attached by nb2prod itself."""
    from nb2prod.builder.codegen import write
    from nb2prod.builder.lift import manifest_file
    from nb2prod.monitoring.attach import attach

    src = root / "src"
    (src / "lifted").mkdir(parents=True)
    fields = [f"    x{i}: Series[float] = pa.Field(ge=-100, le=100)" for i in range(NUMERIC)]
    fields += [f"    c{j}: Series[str] = pa.Field(isin=LEVELS)" for j in range(CATEGORICAL)]
    text = SCHEMA.format(levels=LEVELS, fields="\n".join(fields))
    (src / "lifted" / "__init__.py").write_text("")
    (src / "lifted" / "schema.py").write_text(text)
    train = root / "train"
    train.mkdir()
    reference = frame(5000, seed=1)
    reference.drop(columns="prediction").to_parquet(train / "reference.parquet")
    reference[["prediction"]].to_parquet(train / "predictions.parquet")
    manifest = {
        "name": "bench",
        "version": "v1",
        "tag": "bench:v1",
        "model_tag": "bench-model:v1",
        "notebook": "bench.ipynb",
        "input_schema": "Row",
        "entrypoint": None,
        "metrics": {},
        "gates": [],
    }
    training = SimpleNamespace(
        reference_file=train / "reference.parquet",
        predictions_file=train / "predictions.parquet",
        classes=[0, 1],
    )
    settings = SimpleNamespace(monitoring={}, reference="X_train")
    attach(src, training, settings, manifest)
    write([manifest_file(manifest)], src)
    return root


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, build: Path, current: Path, out: Path) -> dict[str, Any]:
    """One measured run in this (fresh) process; returns seconds and peak RSS."""
    import evidently  # noqa: F401 - import cost is not what is measured
    import pandas as pd

    from nb2prod.monitoring.run import monitor

    result: dict[str, Any] = {"kind": kind, "rss_before_mb": peak_mb()}
    if kind == "nb2prod":
        start = time.perf_counter()
        outcome = monitor(build, current, html=out / "nb2prod.html", json_out=out / "nb2prod.json")
        result["seconds"] = time.perf_counter() - start
        result["drifted_columns"] = outcome.drifted_columns
    else:
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift
        from evidently.presets import DataDriftPreset

        config = json.loads((build / "src" / "monitoring" / "config.json").read_text())
        columns = config["columns"]
        start = time.perf_counter()
        cur = pd.read_parquet(current)
        ref = pd.read_parquet(build / "src" / "monitoring" / "reference.parquet")
        ref["prediction"] = pd.read_parquet(build / "src" / "monitoring" / "predictions.parquet")
        definition = DataDefinition(
            numerical_columns=[c["name"] for c in columns if c["role"] == "numerical"],
            categorical_columns=[c["name"] for c in columns if c["role"] == "categorical"]
            + ["prediction"],
        )
        report = Report(
            [
                DataDriftPreset(
                    columns=[c["name"] for c in columns],
                    drift_share=config["drift_share"],
                    per_column_method={c["name"]: c["method"] for c in columns},
                    per_column_threshold={c["name"]: c["threshold"] for c in columns},
                ),
                ValueDrift(column="prediction", method=config["prediction"]["method"]),
            ],
            include_tests=True,
        )
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        snapshot.save_html(str(out / "bare.html"))
        result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = peak_mb()
    return result


def measure(kind: str, build: Path, current: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_monitoring", "--child", kind]
    cmd += ["--build", str(build), "--current", str(current), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_monitor(rows: int, out: Path) -> dict[str, Any]:
    """nb2prod monitor vs bare Evidently on ``rows`` x 20 current rows."""
    build = make_build(out / "build")
    current = out / "current.parquet"
    frame(rows, seed=2, shift=0.5).to_parquet(current)
    bare = measure("bare", build, current, out)
    ours = measure("nb2prod", build, current, out)
    return {
        "rows": rows,
        "columns": NUMERIC + CATEGORICAL,
        "bare_evidently": bare,
        "nb2prod_monitor": ours,
        "time_ratio": ours["seconds"] / bare["seconds"],
        "peak_rss_ratio": ours["peak_rss_mb"] / bare["peak_rss_mb"],
    }


def bench_sink(out: Path, calls: int = 20000) -> dict[str, Any]:
    """Per-call cost of ``sink.log()`` (the only work logging adds to a request)."""
    import numpy as np

    from nb2prod.serving.sink import Sink  # the module every bento ships as nb2prod_sink.py

    blocker = out / "bench_sink.blocker"
    blocker.write_text("a file, so its child cannot be a directory")
    row = frame(1, seed=3).drop(columns="prediction")
    prediction = np.array([1])
    results = {}
    for label, directory in (
        ("writable", out / "logs"),
        ("unwritable", blocker / "x"),
    ):
        sink = Sink(str(directory), 64 * 2**20, "bench", "v1")
        took = []
        for _ in range(calls):
            start = time.perf_counter_ns()
            sink.log("predict", row, prediction, ["prediction"])
            took.append(time.perf_counter_ns() - start)
            if len(took) % 1000 == 0:
                sink.flush()  # the writer keeps up at serving rates; do not measure drops
        sink.close()
        took_us = np.asarray(took) / 1000
        results[label] = {
            "calls": calls,
            "p50_us": float(np.percentile(took_us, 50)),
            "p99_us": float(np.percentile(took_us, 99)),
            "written": sink.written,
            "dropped": sink.dropped,
        }
    return results


@contextmanager
def served(tag: str, log_dir: str, out: Path) -> Iterator[str]:
    """``bentoml serve tag`` on a free loopback port with ``NB2PROD_LOG_DIR=log_dir``."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bentoml = Path(sys.executable).parent / "bentoml"
    cmd = [str(bentoml), "serve", tag, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "NB2PROD_LOG_DIR": log_dir, "BENTOML_DO_NOT_TRACK": "true"}
    with open(out / f"serve-{port}.log", "w") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def bench_served(tag: str, out: Path, requests: int = 400) -> dict[str, Any]:
    """Single-row /predict latency with logging off and on (same bento, sequential calls)."""
    import httpx
    import numpy as np

    row = {
        "tenure_months": 12,
        "monthly_charges": 70.5,
        "contract": "month-to-month",
        "payment_method": "card",
        "support_calls": 1,
    }
    results: dict[str, Any] = {}
    for label, log_dir in (("logging_off", "off"), ("logging_on", str(out / "served-logs"))):
        with served(tag, log_dir, out) as base, httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(50):
                client.post("/predict", json={"rows": [row]})
            took = []
            for _ in range(requests):
                start = time.perf_counter()
                client.post("/predict", json={"rows": [row]}).raise_for_status()
                took.append((time.perf_counter() - start) * 1000)
        results[label] = {
            "requests": requests,
            "p50_ms": float(np.percentile(took, 50)),
            "p99_ms": float(np.percentile(took, 99)),
        }
    results["p50_overhead_ms"] = results["logging_on"]["p50_ms"] - results["logging_off"]["p50_ms"]
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--serve", help="a bento tag with churn's inputs, for served latency")
    parser.add_argument("--out", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--current", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.build, args.current, args.out)))
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="nb2prod-bench-monitoring-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    report = {"sink": bench_sink(out)}
    if args.serve:
        report["served"] = bench_served(args.serve, out)
    report["monitor"] = bench_monitor(args.rows, out)
    (out / "bench_monitoring.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
