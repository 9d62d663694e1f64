"""Serving cases: a bento and its FastAPI + joblib baseline side by side, in alternating rounds.

Every participant (a server over HTTP, or the bento's own service called in-process) takes
its turn in each round with the same client, so a change in the machine's background load
during a case falls on all of them alike. A participant's figures are over all its rounds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.build import Built
from benchmarks.load import LoadResult, load, merge

CONCURRENCY = (1, 8, 32, 64)  # the example's full sweep
ROUNDS = 5  # each serving case is split into this many rounds, participants taking turns
Runner = Callable[[int], LoadResult]  # runs that many requests, returns what it saw


def requests_for(concurrency: int, scale: float, *, c1: int = 600, above: int = 2000) -> int:
    """How many requests a case sends to each participant, over all its rounds."""
    return max(50, int((c1 if concurrency == 1 else above) * scale))


def side_by_side(runners: dict[str, Runner], requests: int, rounds: int = ROUNDS) -> dict:
    """Each runner ``requests // rounds`` at a time, taking turns for ``rounds`` rounds."""
    parts: dict[str, list[LoadResult]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            parts[name].append(run(max(1, requests // rounds)))
    return {name: merge(p) for name, p in parts.items()}


def over_http(url: str, payloads: list, concurrency: int) -> Runner:
    return lambda n: load(f"{url}/predict", payloads, requests=n, concurrency=concurrency)


def _print(label: str, name: str, c: int, r: LoadResult) -> None:
    print(
        f"  {label} {name:17} c={c:<3} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.1f} ms"
        f"  p99 {r.p99_ms:7.1f} ms  errors {r.errors}",
        flush=True,
    )


def overhead(served: LoadResult, inprocess: LoadResult) -> dict[str, Any]:
    """The serving overhead: served p50 at concurrency 1 minus the in-process p50."""
    return {
        "served_p50_ms": served.p50_ms,
        "inprocess_p50_ms": inprocess.p50_ms,
        "overhead_ms": served.p50_ms - inprocess.p50_ms,
        "inprocess": inprocess.to_dict(),
    }


def bench_serving(
    built: Built,
    *,
    scale: float,
    logs: Path,
    work: Path,
    concurrency: tuple[int, ...] = CONCURRENCY,
    one_thread: bool = True,
    requests_above: int = 2000,
) -> tuple[dict[str, Any], str, ExitStack]:
    """The bento, its baseline (and the baseline on one OpenMP thread) up at once; each
    concurrency runs on each in rounds, and at concurrency 1 the bento's own service in-process
    takes its turn too. Returns the results, the bento's URL and the stack that stops them.
    """
    from benchmarks.inprocess import InProcess
    from benchmarks.servers import bentoml_command, running, uvicorn_command

    env = built.baseline_env()
    servers: dict[str, tuple[Callable[[int], list[str]], dict[str, str]]] = {
        "bento": (lambda p: bentoml_command(built.tag, p), {}),
        "baseline": (lambda p: uvicorn_command("benchmarks.baseline:app", p), env),
    }
    if one_thread:  # the baseline with the one OpenMP thread the bento uses: what that is worth
        servers["baseline_1thread"] = (
            lambda p: uvicorn_command("benchmarks.baseline:app", p),
            {**env, "OMP_NUM_THREADS": "1"},
        )
    payloads = built.payloads()
    results: dict[str, Any] = {"servers": {name: {} for name in servers}}
    stack = ExitStack()
    with stack:
        urls = {
            name: stack.enter_context(running(cmd, log_dir=logs, env=extra)).url
            for name, (cmd, extra) in servers.items()
        }
        inprocess = stack.enter_context(InProcess(built.src, payloads, work / built.name))
        for url in urls.values():  # warm up: imports, first predict, connections
            load(f"{url}/predict", payloads, requests=max(50, int(200 * scale)), concurrency=8)
        for c in concurrency:
            runners = {name: over_http(url, payloads, c) for name, url in urls.items()}
            if c == 1:
                runners["inprocess"] = inprocess.run
            merged = side_by_side(runners, requests_for(c, scale, above=requests_above))
            for name, r in merged.items():
                _print(f"{built.name:8}", name, c, r)
                if name != "inprocess":
                    results["servers"][name][str(c)] = r.to_dict()
            if c == 1:
                results["overhead"] = overhead(merged["bento"], merged["inprocess"])
        return results, urls["bento"], stack.pop_all()


def ceiling(built: Built, rows: int = 2000, repeat: int = 5) -> dict[str, Any]:
    """In-process rows/s of the lifted features + model.predict on one batch of ``rows``."""
    from threadpoolctl import threadpool_limits

    from nb2prod.bento.locate import load_pipeline

    entry = load_pipeline(built.src, built.manifest).entrypoint or (lambda frame: frame)
    batch = built.frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    best = float("inf")
    with threadpool_limits(1):
        for _ in range(repeat):
            start = time.perf_counter()
            built.model.predict(entry(batch))
            best = min(best, time.perf_counter() - start)
    return {"batch_rows": rows, "rows_per_s": rows / best}


def bench_validation(built: Built, url: str, sizes=(1, 100, 10_000)) -> dict[str, Any]:
    """In-process validation time against the whole served request, per request size."""
    sys.path.insert(0, str(built.src))
    import nb2prod_validation as runtime  # the bento's own validation

    from nb2prod.bento.locate import load_pipeline

    schema = load_pipeline(built.src, built.manifest).input_schema
    rows = built.rows
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
