"""``make bench``: build the churn example, then measure it side by side with the baseline.

Cases: build (cold, by stage, and an unchanged rebuild), serving (bento vs the FastAPI +
joblib baseline at concurrency 1, 8, 32 and 64, and the in-process ceiling), validation cost,
the full-size hardening checks, and monitoring (``benchmarks.bench_monitoring``). Writes
``benchmarks/results/bench.json`` and ``docs/images/performance.png``, prints a table and the
ratios that the targets are about. ``--scale 0.1`` runs every load case at a tenth of its size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench.json"
PLOT = ROOT / "docs" / "images" / "performance.png"
NOTEBOOK = ROOT / "notebooks" / "churn.ipynb"
CONCURRENCY = (1, 8, 32, 64)
ROUNDS = 5  # each serving case is split into this many rounds, servers taking turns
TARGETS = {
    "throughput_c32": ("bento req/s ÷ baseline req/s at concurrency 32", ">=", 2.0),
    "p50_c1": ("bento p50 ÷ baseline p50 at concurrency 1", "<=", 1.5),
    "validation_share_1row": ("validation share of a 1-row request", "<=", 0.20),
    "rebuild_s": ("unchanged rebuild, seconds", "<=", 5.0),
    "invalid_flood_s": ("a 10,000-row all-invalid request answered, seconds", "<=", 2.0),
    "healthz_p99_during_flood_ms": ("/healthz p99 while it is validated, ms", "<=", 100.0),
    "errors": ("errors in every case", "==", 0),
}


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: missing values as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def timed_build(out: Path) -> dict[str, Any]:
    """``nb2prod.build`` with the time of each stage."""
    from nb2prod.builder.pipeline import build

    stages: dict[str, float] = {}
    started: dict[str, float] = {}

    def progress(stage: str, event: str) -> None:
        if event == "start":
            started[stage] = time.perf_counter()
        else:
            stages[stage] = time.perf_counter() - started[stage]

    start = time.perf_counter()
    result = build(NOTEBOOK, out_dir=out, progress=progress)
    return {"total_s": time.perf_counter() - start, "stages_s": stages, "result": result}


def bench_build(out: Path) -> tuple[dict[str, Any], Any]:
    cold = timed_build(out)
    warm = timed_build(out)
    result = cold.pop("result")
    warm_result = warm.pop("result")
    return {
        "cold": cold,
        "rebuild": {
            **warm,
            "cached": warm_result.cached,
            "same_tag": warm_result.tag == result.tag,
        },
    }, result


def ceiling(src: Path, model: Any, frame: Any, rows: int = 2000, repeat: int = 5) -> dict:
    """In-process rows/s of the lifted features + model.predict on one batch of ``rows``."""
    sys.path.insert(0, str(src))
    from lifted.features import features  # the bento's own lifted code
    from threadpoolctl import threadpool_limits

    batch = frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    best = float("inf")
    with threadpool_limits(1):
        for _ in range(repeat):
            start = time.perf_counter()
            model.predict(features(batch))
            best = min(best, time.perf_counter() - start)
    return {"batch_rows": rows, "rows_per_s": rows / best}


def bench_validation(src: Path, rows: list[dict], url: str, sizes=(1, 100, 10_000)) -> dict:
    """In-process validation time against the whole served request, per request size."""
    sys.path.insert(0, str(src))
    import nb2prod_validation as runtime  # the bento's own validation

    from benchmarks.load import load

    service = json.loads((src / "nb2prod.json").read_text())
    schema_mod = __import__("lifted.schema", fromlist=[service["input_schema"]])
    schema = getattr(schema_mod, service["input_schema"]).to_schema()
    columns = list(rows[0])
    out = {}
    for size in sizes:
        batch = (rows * (size // len(rows) + 1))[:size]
        repeat = max(3, min(300, 3000 // size))

        def per_call(fast: bool, batch=batch, repeat=repeat) -> float:
            runtime.validate(schema, batch, columns, fast=fast)
            start = time.perf_counter()
            for _ in range(repeat):
                runtime.validate(schema, batch, columns, fast=fast)
            return (time.perf_counter() - start) / repeat * 1000

        served = load(
            f"{url}/predict", [{"rows": batch}], requests=max(10, repeat // 3), concurrency=1
        )
        used, pandera = per_call(True), per_call(False)
        out[str(size)] = {
            "validate_ms": used,
            "pandera_ms": pandera,
            "request_p50_ms": served.p50_ms,
            "share": used / served.p50_ms if served.p50_ms else None,
            "pandera_share": pandera / served.p50_ms if served.p50_ms else None,
            "errors": served.errors,
        }
    return out


def bench_serving(tag: str, src: Path, model_file: Path, payloads: list, scale: float, logs: Path):
    """Bento and baselines up at once; each concurrency runs on each, one after the other."""
    from contextlib import ExitStack

    from benchmarks.load import load, merge
    from benchmarks.servers import bentoml_command, running, uvicorn_command

    env = {
        "NB2PROD_BASELINE_SRC": str(src),
        "NB2PROD_BASELINE_MODEL": str(model_file),
        "PYTHONPATH": str(ROOT),
    }
    servers = {
        "bento": (lambda p: bentoml_command(tag, p), {}),
        "baseline": (lambda p: uvicorn_command("benchmarks.baseline:app", p), env),
        # The baseline again with the one OpenMP thread the bento uses, to show what that is worth.
        "baseline_1thread": (
            lambda p: uvicorn_command("benchmarks.baseline:app", p),
            {**env, "OMP_NUM_THREADS": "1"},
        ),
    }
    results: dict[str, dict[str, Any]] = {name: {} for name in servers}
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(running(cmd, log_dir=logs, env=extra)).url
            for name, (cmd, extra) in servers.items()
        }
        for name, url in urls.items():  # warm up: imports, first predict, connections
            load(f"{url}/predict", payloads, requests=200, concurrency=8)
        for c in CONCURRENCY:
            n = max(50, int((600 if c == 1 else 2000) * scale))
            # Interleaved rounds: a change in the machine's background load during the case
            # falls on every server alike, instead of on whichever ran at that moment.
            rounds: dict[str, list] = {name: [] for name in urls}
            for _ in range(ROUNDS):
                for name, url in urls.items():
                    part = load(f"{url}/predict", payloads, requests=n // ROUNDS, concurrency=c)
                    rounds[name].append(part)
            for name in urls:
                r = merge(rounds[name])
                results[name][str(c)] = r.to_dict()
                print(
                    f"  serving {name:17} c={c:<3} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.1f} ms"
                    f"  p99 {r.p99_ms:7.1f} ms  errors {r.errors}",
                    flush=True,
                )
        return results, urls["bento"], stack.pop_all()


def bench_hardening(tag: str, url: str, payloads: list, body: dict, scale: float, logs: Path):
    from benchmarks import hardening
    from benchmarks.servers import bentoml_command, running

    out: dict[str, Any] = {}
    n = max(200, int(20_000 * scale))
    out["load"] = hardening.load_check(url, payloads, requests=n, concurrency=64).to_dict()
    print(f"  load {n} at c=64: {out['load']['statuses']}", flush=True)
    out["schemathesis"] = hardening.schemathesis_check(url, examples=max(100, int(1000 * scale)))
    print(
        f"  schemathesis: {out['schemathesis']['cases']} cases, {out['schemathesis']['statuses']}",
        flush=True,
    )
    with running(
        lambda p: bentoml_command(tag, p, "--timeout-graceful-shutdown", "30"), log_dir=logs
    ) as server:
        out["sigterm"] = hardening.sigterm_check(server, body, after=max(50, int(500 * scale)))
    print(f"  sigterm under load: {out['sigterm']['outcomes']}", flush=True)
    big = {"rows": (payloads[0]["rows"] * 2000)[:2000]}
    limit = {"BENTOML_CONFIG_OPTIONS": "services.churn.traffic.max_concurrency=4"}
    with running(lambda p: bentoml_command(tag, p), log_dir=logs, env=limit) as server:
        out["overload"] = hardening.overload_check(server.url, big, concurrency=64, requests=256)
    print(f"  overload past max_concurrency=4: {out['overload']['statuses']}", flush=True)
    out["offline"] = hardening.offline_check(tag, body)
    print(f"  no network: {out['offline'].get('status')}", flush=True)
    invalid = {k: "x" if isinstance(v, str) else -1 for k, v in payloads[0]["rows"][0].items()}
    out["invalid_flood"] = hardening.invalid_flood_check(url, invalid, rows=10_000)
    flood = out["invalid_flood"]
    print(
        f"  10,000 invalid rows: {flood['status']} in {flood['seconds']:.2f} s, "
        f"/healthz p99 {flood['healthz_p99_ms']:.1f} ms over {flood['healthz']} probes",
        flush=True,
    )
    out["oversized_body"] = hardening.oversized_body_check(url, megabytes=100)
    print(f"  100 MB body: {out['oversized_body']}", flush=True)
    slow_env = {**limit, "NB2PROD_BODY_TIMEOUT_S": "2"}
    with running(lambda p: bentoml_command(tag, p), log_dir=logs, env=slow_env) as server:
        out["slow_senders"] = hardening.slow_sender_check(
            server.url, body, senders=max(16, int(300 * scale)), gap=2.0, probes=40
        )
    print(f"  slow senders: {out['slow_senders']['slow_statuses']}", flush=True)
    return out


def bench_monitoring(tag: str, scale: float) -> dict[str, Any]:
    """The monitoring engineer's case, run as its own module (absent: noted, not failed)."""
    if not (ROOT / "benchmarks" / "bench_monitoring.py").exists():
        return {"skipped": "benchmarks/bench_monitoring.py has not landed yet"}
    out = Path(tempfile.mkdtemp(prefix="nb2prod-bench-monitoring-"))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_monitoring",
        "--serve",
        tag,
        "--out",
        str(out),
        "--rows",
        str(max(10_000, int(1_000_000 * scale))),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    report = out / "bench_monitoring.json"
    if proc.returncode != 0 or not report.exists():
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-2000:]}
    return json.loads(report.read_text())


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    s = r["serving"]
    errors = sum(x["errors"] for runs in s.values() for x in runs.values())
    errors += sum(v["errors"] for v in r["validation"].values())
    h = r.get("hardening", {})
    if h:
        errors += h["load"]["errors"] + h["schemathesis"]["problem_count"]
        errors += h["sigterm"]["outcomes"].get("dropped", 0) + (0 if h["offline"]["ok"] else 1)
    return {
        "throughput_c32": s["bento"]["32"]["rps"] / s["baseline"]["32"]["rps"],
        "throughput_c32_vs_1thread": s["bento"]["32"]["rps"] / s["baseline_1thread"]["32"]["rps"],
        "p50_c1": s["bento"]["1"]["p50_ms"] / s["baseline"]["1"]["p50_ms"],
        "p50_c1_vs_1thread": s["bento"]["1"]["p50_ms"] / s["baseline_1thread"]["1"]["p50_ms"],
        "validation_share_1row": r["validation"]["1"]["share"],
        "rebuild_s": r["build"]["rebuild"]["total_s"],
        "invalid_flood_s": h.get("invalid_flood", {}).get("seconds", float("nan")),
        "healthz_p99_during_flood_ms": h.get("invalid_flood", {}).get(
            "healthz_p99_ms", float("nan")
        ),
        "served_fraction_of_ceiling_c64": s["bento"]["64"]["rows_per_s"]
        / r["ceiling"]["rows_per_s"],
        "errors": errors,
    }


def verdicts(values: dict[str, Any]) -> dict[str, bool]:
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b}
    measured = {k: v for k, v in values.items() if not math.isnan(v)}  # NaN: not run
    return {
        k: ops[op](measured[k], bound) for k, (_, op, bound) in TARGETS.items() if k in measured
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        "| server | concurrency | req/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in r["serving"].items():
        for c, x in runs.items():
            lines.append(
                f"| {name} | {c} | {x['rps']:.1f} | {x['rows_per_s']:.1f} | "
                f"{x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['errors']} |"
            )
    lines += [
        "",
        "| validation rows | fast path ms | Pandera ms | request p50 ms | share |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, v in r["validation"].items():
        lines.append(
            f"| {size} | {v['validate_ms']:.2f} | {v['pandera_ms']:.2f} | "
            f"{v['request_p50_ms']:.1f} | {v['share']:.1%} |"
        )
    b = r["build"]
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in b["cold"]["stages_s"].items())
    cold = f"cold build {b['cold']['total_s']:.1f} s ({stages})"
    rebuild = (
        f"unchanged rebuild {b['rebuild']['total_s']:.2f} s (cache hit: {b['rebuild']['cached']})"
    )
    ceil = r["ceiling"]
    top = f"ceiling: features + predict in-process, {ceil['rows_per_s']:.0f} rows/s ({ceil['batch_rows']}-row batches)"
    lines += [
        "",
        f"{cold}; {rebuild}",
        top,
        "",
        "| ratio | value | target | holds |",
        "|---|---:|---:|---|",
    ]
    for key, value in r["ratios"].items():
        target = TARGETS.get(key)
        bound = f"{target[1]} {target[2]}" if target else ""
        held = {True: "yes", False: "**no**"}.get(r["verdicts"].get(key), "")
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} | {bound} | {held} |")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in r["serving"].items():
        cs = [int(c) for c in runs]
        left.plot(cs, [runs[c]["rps"] for c in runs], marker="o", label=name)
        right.plot(cs, [runs[c]["p50_ms"] for c in runs], marker="o", label=name)
    for ax, label in ((left, "requests/s (1 row each)"), (right, "p50 latency, ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
        ax.set_xlabel("concurrency")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    left.legend()
    fig.suptitle(f"churn bento vs FastAPI + joblib baseline, one run on loopback ({r['when']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of the load cases")
    parser.add_argument("--no-hardening", action="store_true", help="skip the hardening checks")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results JSON")
    parser.add_argument("--plot", type=Path, default=PLOT, help="the plot PNG")
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, Ctrl-C from make) unwinds the stack, so every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="nb2prod-bench-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")  # a store of its own, set before import
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    logs = work / "logs"
    r: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "scale": args.scale,
    }
    print(f"nb2prod bench: work directory {work}", flush=True)
    r["build"], result = bench_build(work / "bentos")
    print(
        f"  build: cold {r['build']['cold']['total_s']:.1f} s, "
        f"rebuild {r['build']['rebuild']['total_s']:.2f} s",
        flush=True,
    )

    import joblib
    import pandas as pd

    src = result.build_dir / "src"
    frame = pd.read_parquet(src / "monitoring" / "reference.parquet")
    rows = records(frame)
    payloads = [{"rows": [row]} for row in rows[:1000]]
    import bentoml

    manifest = json.loads((src / "nb2prod.json").read_text())
    with open(bentoml.models.get(manifest["model_tag"]).path_of("model.pkl"), "rb") as fh:
        model = pickle.load(fh)
    model_file = work / "model.joblib"
    joblib.dump(model, model_file)  # what the baseline loads, as the guides do
    r["ceiling"] = ceiling(src, model, frame)
    r["serving"], bento_url, stack = bench_serving(
        result.tag, src, model_file, payloads, args.scale, logs
    )
    with stack:
        r["validation"] = bench_validation(src, rows, bento_url)
        if not args.no_hardening:
            r["hardening"] = bench_hardening(
                result.tag, bento_url, payloads, payloads[0], args.scale, logs
            )
    r["monitoring"] = bench_monitoring(result.tag, args.scale)
    r["ratios"] = ratios(r)
    r["verdicts"] = verdicts(r["ratios"])
    r["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2, default=str) + "\n")
    plot(r, args.plot)
    print()
    print(table(r))
    print(f"\nresults: {args.out}\nplot:    {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
