"""The explain case: what ``POST /explain`` costs, in-process and served, per notebook.

For churn, diabetes and the untuned bookings notebook (built with the gate off, or reused
from the cache), one row and ten rows per request, one request at a time:

- **in-process**: the bento's own service object (``benchmarks.inprocess.service_instance``)
  in a process of its own, its ``explain`` awaited as a request would run it once BentoML has
  parsed the body;
- **served**: ``bentoml serve`` on loopback, over one kept-alive connection.

The first request of each is timed apart: it imports shap. Every
answer is checked for additivity (the attributions add up to output minus base value), and
the worst gap is reported. ``shap_import_s`` is the import alone, after pandas, scikit-learn
and bentoml (what a service has loaded already), median of three fresh processes.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.load import percentile

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 10)
CALLS = {1: 40, 10: 10}  # requests per size at scale 1, after the first
TARGET_MS = 100.0  # a one-row explanation on the example notebooks


def _gap(explanation: dict[str, Any]) -> float:
    """How far a row's attributions are from adding up to its output minus its base value."""
    output, base, found = (
        explanation["output"],
        explanation["base_value"],
        explanation["attributions"],
    )
    if isinstance(output, dict):
        return max(abs(sum(found[k].values()) - (output[k] - base[k])) for k in output)
    return abs(sum(found.values()) - (output - base))


def _timings(call: Any, rows: list[dict[str, Any]], scale: float) -> dict[str, Any]:
    """``call(rows) -> answer dict`` timed: the first request, then each size in turn."""
    out: dict[str, Any] = {}
    start = time.perf_counter()
    first = call(rows[:1])
    out["first_ms"] = (time.perf_counter() - start) * 1e3
    gaps = [_gap(e) for e in first["explanations"]]
    for size in SIZES:
        times = []
        for i in range(max(3, int(CALLS[size] * scale))):
            chunk = [rows[(i * size + j) % len(rows)] for j in range(size)]
            start = time.perf_counter()
            answer = call(chunk)
            times.append((time.perf_counter() - start) * 1e3)
            gaps += [_gap(e) for e in answer["explanations"]]
        out[f"rows_{size}"] = {
            "requests": len(times),
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
        }
    out["max_additivity_gap"] = max(gaps)
    return out


def _in_process(src: Path, rows_file: Path, scale: float) -> dict[str, Any]:
    """In this process (run as ``python -m benchmarks.explain SRC ROWS SCALE``)."""
    import asyncio

    from benchmarks.inprocess import _Context, service_instance

    instance = service_instance(src)
    rows = json.loads(rows_file.read_text())
    loop = asyncio.new_event_loop()

    def call(chunk: list[dict[str, Any]]) -> dict[str, Any]:
        ctx = _Context()
        answer = loop.run_until_complete(instance.explain(chunk, ctx))
        if ctx.response.status_code != 200:
            raise RuntimeError(f"/explain answered {ctx.response.status_code}: {answer.body!r}")
        return answer.model_dump()

    return _timings(call, rows, scale)


def in_process(src: Path, rows: list[dict[str, Any]], work: Path, scale: float) -> dict[str, Any]:
    """The in-process figures, from a process of the bento's own."""
    rows_file = work / f"explain-rows-{src.parent.name}.json"
    rows_file.write_text(json.dumps(rows))
    command = [sys.executable, "-m", "benchmarks.explain", str(src), str(rows_file), str(scale)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"in-process /explain failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def served(tag: str, rows: list[dict[str, Any]], logs: Path, scale: float) -> dict[str, Any]:
    """The served figures: ``bentoml serve`` on loopback, one request at a time."""
    import httpx

    from benchmarks.servers import bentoml_command, running

    with running(lambda port: bentoml_command(tag, port), log_dir=logs) as server:
        http = httpx.Client(base_url=server.url, timeout=120)

        def call(chunk: list[dict[str, Any]]) -> dict[str, Any]:
            answer = http.post("/explain", json={"rows": chunk})
            if answer.status_code != 200:
                raise RuntimeError(f"/explain answered {answer.status_code}: {answer.text}")
            return answer.json()

        with http:
            return _timings(call, rows, scale)


def shap_import_s() -> float:
    """``import shap`` after what a service has imported already: median of three processes."""
    code = (
        "import time, pandas, sklearn.pipeline, bentoml; t = time.perf_counter(); import shap; "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def ratios(r: dict[str, Any]) -> dict[str, float]:
    """The served 1-row p50 per notebook: ``explain_p50_1row_ms[name]`` for the examples (the
    100 ms target), ``explain_p50_1row_untuned_ms[name]`` for the untuned one (no target)."""
    out = {}
    for name, figures in (r.get("explain") or {}).items():
        if isinstance(figures, dict) and "served" in figures:
            key = "explain_p50_1row_untuned_ms" if figures["untuned"] else "explain_p50_1row_ms"
            out[f"{key}[{name}]"] = figures["served"]["rows_1"]["p50_ms"]
    return out


def run_explain(r: dict[str, Any], work: Path, scale: float, logs: Path) -> None:
    """Build the three notebooks (gate off) and measure /explain on each; into ``r["explain"]``."""
    import pandas as pd

    from benchmarks.build import NOTEBOOKS, UNTUNED, records
    from nb2prod.builder.pipeline import build

    out: dict[str, Any] = {"target_ms": TARGET_MS, "shap_import_s": shap_import_s()}
    print(f"  explain: import shap {out['shap_import_s']:.2f} s", flush=True)
    for name, notebook in {**NOTEBOOKS, **UNTUNED}.items():
        result = build(notebook, out_dir=work / "bentos", gate=False)
        src = result.build_dir / "src"
        manifest = json.loads((src / "nb2prod.json").read_text())
        rows = records(pd.read_parquet(src / "monitoring" / "reference.parquet").head(200))
        figures = {
            "tag": result.tag,
            "columns": len(rows[0]),
            "runtime": (manifest.get("serving") or {}).get("runtime"),
            "untuned": name in UNTUNED,
            "in_process": in_process(src, rows, work, scale),
            "served": served(result.tag, rows, logs, scale),
        }
        out[name] = figures
        for where in ("in_process", "served"):
            f = figures[where]
            print(
                f"  explain {name} {where}: first {f['first_ms']:.0f} ms; 1 row p50 "
                f"{f['rows_1']['p50_ms']:.1f} / p95 {f['rows_1']['p95_ms']:.1f} ms; 10 rows p50 "
                f"{f['rows_10']['p50_ms']:.1f} / p95 {f['rows_10']['p95_ms']:.1f} ms; worst "
                f"additivity gap {f['max_additivity_gap']:.1e}",
                flush=True,
            )
    r["explain"] = out


if __name__ == "__main__":
    print(json.dumps(_in_process(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))))
