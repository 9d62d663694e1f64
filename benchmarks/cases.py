"""The bench's other cases: full-size hardening, monitoring, and ``nb2prod check``'s timing."""

from __future__ import annotations

import importlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def bench_hardening(tag: str, url: str, payloads: list, body: dict, scale: float, logs: Path):
    """The hardening checks of ``benchmarks.hardening`` at full size (times ``scale``)."""
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


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def bench_check(notebooks: dict[str, Path], scale: float) -> dict[str, Any]:
    """``nb2prod check`` from process start and the JupyterLab route per call, per notebook,
    by ``benchmarks.check_timing`` (its own helper's module; absent: "not available")."""
    try:
        timing = importlib.import_module("benchmarks.check_timing")
    except ImportError as exc:
        return {"not available": f"benchmarks/check_timing.py does not import ({exc})"}
    runs, calls = max(3, int(10 * scale)), max(10, int(100 * scale))
    out: dict[str, Any] = {}
    for name, notebook in notebooks.items():
        try:
            cli = [float(s) for s in timing.cli_seconds(notebook, runs)]
            route = [float(ms) for ms in timing.route_ms(notebook, calls)]
        except Exception as exc:  # noqa: BLE001 - the other cases still count
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out[name] = {"cli_s": _summary(cli), "route_ms": _summary(route)}
        print(
            f"  check {name}: {out[name]['cli_s']['median']:.3f} s from process start, "
            f"route {out[name]['route_ms']['median']:.1f} ms per call",
            flush=True,
        )
    return out
