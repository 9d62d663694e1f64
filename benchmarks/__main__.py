"""``make bench``: the example bentos and an untuned one against the FastAPI + joblib baseline.

Each notebook is built, then its bento is measured side by side with the baseline.

Cases (``--only`` picks some):

- ``churn``: the example's cold build by stage and an unchanged rebuild; the bento against
  the baseline (and the baseline on one OpenMP thread) at concurrency 1, 8, 32 and 64, with
  the bento's own service called in-process taking its turn at concurrency 1 (the serving
  overhead); the in-process ceiling; validation's share of a request.
- ``hardening``: the full-size hardening checks on the churn bento (``benchmarks.hardening``).
- ``monitoring``: the prediction log and ``nb2prod monitor`` (``benchmarks.bench_monitoring``).
- ``python``: the churn notebook again with ``serving.runtime: python`` (the pickle serves):
  the bento against its baseline at concurrency 1 and 32, and the in-process path.
- ``diabetes``: the second example (expected to serve the compiled runtime): build, then the
  bento against its baseline at concurrency 1 and 32, and the in-process path.
- ``untuned``: the same on ``benchmarks/notebooks/bookings.ipynb``, whose schema is not
  coerced and not on the fast path.
- ``check``: ``nb2prod check`` from process start, and the JupyterLab route per call.
- ``batch``: ``nb2prod score`` on the three notebooks against the in-process ceiling, Spark
  ``local[2]`` against the local engine, peak RSS on a 10M-row parquet, time to the first
  rows (``benchmarks.batch``). Run alone (``--only batch``) it writes
  ``benchmarks/results/batch.json`` and no plot, so a full run's files stay as they are.
- ``auth``: the churn bento served with API keys and rate limits on against off, p50/p95 at
  concurrency 1 interleaved, and the keyed hardening checks (``benchmarks.auth``). Run alone
  it writes ``benchmarks/results/auth.json`` and no plot.
- ``explain``: ``POST /explain`` latency, 1 and 10 rows, p50/p95, in-process and served, on
  churn, diabetes and the untuned notebook, the first request apart, and ``import shap``
  (``benchmarks.explain``). Run alone it writes ``benchmarks/results/explain.json``, no plot.

Writes ``benchmarks/results/bench.json`` and ``docs/images/performance.png``, and prints a
table and every ratio beside its target. ``--scale 0.1`` runs every load case at a tenth of
its size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.build import NOTEBOOKS, UNTUNED, bench_build, open_built, with_runtime
from benchmarks.serving import CONCURRENCY

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench.json"
PLOT = ROOT / "docs" / "images" / "performance.png"
BATCH_RESULTS = ROOT / "benchmarks" / "results" / "batch.json"
AUTH_RESULTS = ROOT / "benchmarks" / "results" / "auth.json"
EXPLAIN_RESULTS = ROOT / "benchmarks" / "results" / "explain.json"
CASES = (
    "churn",
    "hardening",
    "monitoring",
    "python",
    "diabetes",
    "untuned",
    "check",
    "batch",
    "auth",
    "explain",
)


def cases_of(only: str | None, hardening: bool = True) -> list[str]:
    """The cases to run, in run order, from ``--only a,b`` (all when None).

    Raises:
        SystemExit: a name that is not a case.
    """
    chosen = set(CASES) if only is None else {c.strip() for c in only.split(",") if c.strip()}
    unknown = chosen - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(sorted(unknown))}; cases: {', '.join(CASES)}")
    if not hardening:
        chosen.discard("hardening")
    if "hardening" in chosen:
        chosen.add("churn")  # it runs against the churn bento that case serves
    return [c for c in CASES if c in chosen]


def run_churn(r: dict, cases: list[str], work: Path, scale: float, logs: Path) -> None:
    from benchmarks.cases import bench_hardening
    from benchmarks.serving import bench_serving, bench_validation, ceiling

    serve = "churn" in cases
    build, result = bench_build(NOTEBOOKS["churn"], work / "bentos", rebuild=serve)
    built = open_built("churn", result, work)
    nb: dict[str, Any] = {"untuned": False, "bento": built.summary(), "build": build}
    r["notebooks"]["churn"] = nb
    cold = build["cold"]["total_s"]
    print(f"  churn build: cold {cold:.1f} s, serves {built.runtime}", flush=True)
    if not serve:  # only the monitoring case needs the bento
        return
    print(f"  churn rebuild: {build['rebuild']['total_s']:.2f} s", flush=True)
    nb["ceiling"] = ceiling(built)
    nb["serving"], url, stack = bench_serving(built, scale=scale, logs=logs, work=work)
    with stack:
        nb["validation"] = bench_validation(built, url)
        if "hardening" in cases:
            payloads = built.payloads()
            r["hardening"] = bench_hardening(result.tag, url, payloads, payloads[0], scale, logs)


def run_notebook(r: dict, name: str, notebook: Path, untuned: bool, work: Path, scale, logs):
    """Build ``notebook`` and serve it against its baseline at concurrency 1 and 32."""
    from benchmarks.serving import bench_serving

    build, result = bench_build(notebook, work / "bentos", rebuild=False)
    built = open_built(name, result, work)
    print(
        f"  {name} build: cold {build['cold']['total_s']:.1f} s, gate {build['gate_s'] or 0:.1f} s,"
        f" serves {built.runtime}",
        flush=True,
    )
    nb: dict[str, Any] = {"untuned": untuned, "bento": built.summary(), "build": build}
    r["notebooks"][name] = nb
    nb["serving"], _, stack = bench_serving(
        built,
        scale=scale,
        logs=logs,
        work=work,
        concurrency=(1, 32),
        one_thread=False,
        requests_above=1000,  # the baselines at 32 are slow: enough for a stable ratio
    )
    stack.close()


def run_batch(r: dict, work: Path, scale: float) -> None:
    """Build the examples and the untuned notebook, then ``benchmarks.batch`` on them.

    The builds skip the property gate (the gate's time is the other cases' figure, and it
    changes nothing in the bento); a build another case made already is reused from the cache.
    """
    from benchmarks.batch import bench_batch
    from nb2prod.builder.pipeline import build

    built, builds = {}, {}
    for name, notebook in {**NOTEBOOKS, **UNTUNED}.items():
        start = time.perf_counter()
        result = build(notebook, out_dir=work / "bentos", gate=False)
        seconds = time.perf_counter() - start
        built[name] = result.build_dir
        builds[name] = {"tag": result.tag, "build_s": seconds, "cached": result.cached}
        print(f"  {name} build for batch: {seconds:.1f} s", flush=True)
    r["batch"] = bench_batch(built, work / "batch", scale)
    r["batch"]["builds"] = builds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of the load cases")
    parser.add_argument("--no-hardening", action="store_true", help="skip the hardening checks")
    parser.add_argument(
        "--only", metavar="CASES", help=f"comma-separated cases to run, of: {', '.join(CASES)}"
    )
    parser.add_argument("--out", type=Path, default=None, help="the results JSON")
    parser.add_argument("--plot", type=Path, default=PLOT, help="the plot PNG")
    args = parser.parse_args(argv)
    cases = cases_of(args.only, hardening=not args.no_hardening)
    # A SIGTERM (timeout, Ctrl-C from make) unwinds the stack, so every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="nb2prod-bench-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")  # a store of its own, set before import
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    # builds record MLflow runs: in the work directory, never ./mlflow.db in the repo
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    alone = cases in (["batch"], ["auth"], ["explain"])
    if args.out is None:
        alone_out = {"auth": AUTH_RESULTS, "explain": EXPLAIN_RESULTS}
        args.out = alone_out.get(cases[0], BATCH_RESULTS) if alone else RESULTS
    logs = work / "logs"
    r: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "scale": args.scale,
        "cases": cases,
        "notebooks": {},
    }
    print(f"nb2prod bench: work directory {work}; cases {', '.join(cases)}", flush=True)
    if "check" in cases:
        from benchmarks.cases import bench_check

        r["check"] = bench_check(NOTEBOOKS, args.scale)
    if {"churn", "monitoring"} & set(cases):
        run_churn(r, cases, work, args.scale, logs)
    if "monitoring" in cases:
        from benchmarks.cases import bench_monitoring

        r["monitoring"] = bench_monitoring(r["notebooks"]["churn"]["bento"]["tag"], args.scale)
    if "python" in cases:  # the churn model again, served by the pickle
        notebook = with_runtime(NOTEBOOKS["churn"], "python", "churn-python", work / "notebooks")
        run_notebook(r, "churn-python", notebook, False, work, args.scale, logs)
    if "diabetes" in cases:
        run_notebook(r, "diabetes", NOTEBOOKS["diabetes"], False, work, args.scale, logs)
    if "untuned" in cases:
        for name, notebook in UNTUNED.items():
            run_notebook(r, name, notebook, True, work, args.scale, logs)
    if "batch" in cases:
        run_batch(r, work, args.scale)
    if "auth" in cases:
        from benchmarks.auth import run_auth

        run_auth(r, work, args.scale, logs)
    if "explain" in cases:
        from benchmarks.explain import run_explain

        run_explain(r, work, args.scale, logs)
    r["ratios"] = report.ratios(r)
    r["verdicts"] = report.verdicts(r["ratios"])
    r["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2, default=str) + "\n")
    if not alone:
        report.plot(r, args.plot, CONCURRENCY)
    print()
    print(report.table(r))
    start, end = r["machine"]["load_average_at_start"], r["machine"]["load_average_at_end"]
    print(f"\nload average: {start[0]:.2f} at start, {end[0]:.2f} at end")
    print(f"results: {args.out}" + ("" if alone else f"\nplot:    {args.plot}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
