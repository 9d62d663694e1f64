"""The auth case: what API keys and rate limits cost a served request, and the keyed checks.

- **On against off.** The same bento under two ``bentoml serve`` processes up at once: "on"
  with a keys file (keys made by ``nb2prod.serving.keys.add_key``, what ``nb2prod keys add``
  calls) and ``NB2PROD_RATE_LIMIT`` far above anything the client sends, so every request is
  checked and charged but none is refused; "off" with neither. One client sends 1-row
  ``/predict`` requests at concurrency 1 over one kept-alive connection per server, alternating
  request by request (the same body to both, the order swapped every pair), in ``ROUNDS``
  rounds, so a change in background load falls on both alike. Reported: p50 and p95 each way,
  their differences (the target: p50 at most 0.3 ms more), the median of the per-round p50
  differences, and the median of the per-pair differences.
- **The middleware alone.** ``KeysAndLimits`` around an app that answers at once, called
  in-process with a cached key and a bucket: microseconds per request, for context.
- **Keyed hardening** (``benchmarks.hardening``) on the "on" server: schemathesis with the
  key, every operation of ``/docs.json`` without one, and one client past its own limit while
  another keeps being answered.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.load import LoadResult, merge, percentile

ROUNDS = 30
REQUESTS = 3000  # per server at scale 1, over all the rounds
NEVER = "1000000/s burst=1000000"  # a rate no client here reaches: every request charged
HAMMER_RATE = "5/s burst=5"
TARGET_MS = 0.3


def make_keys(path: Path) -> dict[str, str]:
    """The case's keys file: ``bench`` (the default rate), ``calm`` and ``hammer`` (5/s)."""
    from nb2prod.serving import keys

    return {
        "bench": keys.add_key(path, "bench"),
        "calm": keys.add_key(path, "calm"),
        "hammer": keys.add_key(path, "hammer", HAMMER_RATE),
    }


async def _interleaved(
    urls: dict[str, str], heads: dict[str, dict[str, str]], bodies: list[bytes], n: int, rounds: int
) -> tuple[dict[str, list[LoadResult]], list[float]]:
    """``rounds`` rounds of ``n`` pairs: one request to each server, the same body, the order
    swapped every pair. Each server's rounds, and each pair's difference (first minus second
    server, ms) when both were answered 200."""
    import aiohttp

    names = list(urls)
    parts: dict[str, list[LoadResult]] = {name: [] for name in names}
    paired: list[float] = []
    sessions = {
        name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for name in names
    }
    try:
        for r in range(rounds):
            seen = {name: ({}, [], []) for name in names}  # statuses, latencies, failures
            started = time.perf_counter()
            for i in range(n):
                body = bodies[(r * n + i) % len(bodies)]
                took = {}
                for name in names if i % 2 == 0 else names[::-1]:
                    took[name] = await _one(
                        sessions[name], urls[name], heads[name], body, seen[name]
                    )
                if all(t is not None for t in took.values()):
                    paired.append(took[names[0]] - took[names[1]])
            seconds = time.perf_counter() - started
            for name, (statuses, latencies, failures) in seen.items():
                parts[name].append(_result(n, statuses, latencies, failures, seconds))
    finally:
        for session in sessions.values():
            await session.close()
    return parts, paired


async def _one(session, url: str, headers: dict, body: bytes, seen: tuple) -> float | None:
    """One POST /predict; its latency in ms when answered 200, else None (counted in ``seen``)."""
    import aiohttp

    statuses, latencies, failures = seen
    sent = time.perf_counter()
    try:
        async with session.post(f"{url}/predict", data=body, headers=headers) as resp:
            await resp.read()
            status = str(resp.status)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
        failures.append(f"{type(exc).__name__}: {exc}")
        return None
    ms = (time.perf_counter() - sent) * 1000
    latencies.append(ms)
    statuses[status] = statuses.get(status, 0) + 1
    return ms if status == "200" else None


def _result(n: int, statuses: dict, latencies: list, failures: list, seconds: float) -> LoadResult:
    return LoadResult(
        requests=n,
        concurrency=1,
        rows_per_request=1,
        seconds=seconds,  # the round's, both servers' requests in it
        statuses=statuses,
        errors=sum(v for s, v in statuses.items() if s != "200"),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        latencies_ms=latencies,
        failures=failures,
    )


def on_off(
    on: str, off: str, key: str, payloads: list, *, requests: int, rounds: int = ROUNDS
) -> dict[str, Any]:
    """``requests`` 1-row requests to each server at concurrency 1, alternating one by one."""
    bodies = [json.dumps(p).encode() for p in payloads]
    json_head = {"content-type": "application/json"}
    heads = {"on": {**json_head, "authorization": f"Bearer {key}"}, "off": json_head}
    urls = {"on": on, "off": off}
    warm, _ = asyncio.run(_interleaved(urls, heads, bodies, max(20, requests // 10), 1))
    parts, paired = asyncio.run(
        _interleaved(urls, heads, bodies, max(1, requests // rounds), rounds)
    )
    merged = {name: merge(p) for name, p in parts.items()}
    out: dict[str, Any] = {"rounds": rounds, "warm_up": {k: v[0].statuses for k, v in warm.items()}}
    for name, m in merged.items():
        out[name] = {**m.to_dict(), "p95_ms": percentile(m.latencies_ms, 95)}
    out["p50_cost_ms"] = out["on"]["p50_ms"] - out["off"]["p50_ms"]
    out["p95_cost_ms"] = out["on"]["p95_ms"] - out["off"]["p95_ms"]
    per_round = [a.p50_ms - b.p50_ms for a, b in zip(parts["on"], parts["off"], strict=True)]
    out["p50_cost_ms_median_of_rounds"] = statistics.median(per_round)
    out["paired_cost_ms_median"] = statistics.median(paired) if paired else None
    out["pairs"] = len(paired)
    out["target_ms"] = TARGET_MS
    return out


def middleware_alone(path: Path, key: str, calls: int = 20_000) -> dict[str, Any]:
    """``KeysAndLimits`` in-process around an app that answers at once: µs per request."""
    from nb2prod.serving import auth, keys

    async def inner(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    env = {keys.ENV_FILE: str(path), keys.ENV_RATE: NEVER}
    wrapped = auth.KeysAndLimits(inner, environ=env)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"authorization", f"Bearer {key}".encode())],
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message) -> None:
        return None

    async def per_call(app) -> float:
        await app(dict(scope), receive, send)  # the first: scrypt, then cached
        start = time.perf_counter()
        for _ in range(calls):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - start) / calls * 1e6

    bare = asyncio.run(per_call(inner))
    checked = asyncio.run(per_call(wrapped))
    return {"calls": calls, "bare_us": bare, "with_keys_us": checked, "cost_us": checked - bare}


def bench_auth(tag: str, payloads: list, *, scale: float, logs: Path, work: Path) -> dict:
    """The on/off cost, the middleware alone, and the keyed hardening checks (``scale``d)."""
    from benchmarks import hardening
    from benchmarks.servers import bentoml_command, running
    from nb2prod.serving import keys

    path = work / "auth-keys.json"
    made = make_keys(path)
    on_env = {keys.ENV_FILE: str(path), keys.ENV_RATE: NEVER}
    off_env = {keys.ENV_FILE: "", keys.ENV_RATE: ""}  # unset, whatever the caller's env says
    out: dict[str, Any] = {"rate": NEVER}
    command = lambda p: bentoml_command(tag, p)
    with (
        running(command, log_dir=logs, env=on_env) as on,
        running(command, log_dir=logs, env=off_env) as off,
    ):
        n = max(200, int(REQUESTS * scale))
        out["latency"] = lat = on_off(on.url, off.url, made["bench"], payloads, requests=n)
        print(
            f"  auth c=1: on p50 {lat['on']['p50_ms']:.2f} ms p95 {lat['on']['p95_ms']:.2f} ms,"
            f" off p50 {lat['off']['p50_ms']:.2f} ms p95 {lat['off']['p95_ms']:.2f} ms;"
            f" cost p50 {lat['p50_cost_ms']:+.3f} ms (rounds' median"
            f" {lat['p50_cost_ms_median_of_rounds']:+.3f}, pairs' median"
            f" {lat['paired_cost_ms_median']:+.3f}), p95 {lat['p95_cost_ms']:+.3f} ms",
            flush=True,
        )
        examples = max(100, int(1000 * scale))
        out["schemathesis"] = hardening.schemathesis_check(
            on.url, examples=examples, key=made["bench"]
        )
        s = out["schemathesis"]
        print(f"  schemathesis with a key: {s['cases']} cases, {s['statuses']}", flush=True)
        out["keyless"] = hardening.keyless_check(on.url, made["bench"])
        print(f"  without a key: {out['keyless']['routes']}", flush=True)
        out["client_overload"] = hardening.client_overload_check(
            on.url,
            payloads[0],
            made["hammer"],
            made["calm"],
            calm_requests=max(20, int(200 * scale)),
        )
        o = out["client_overload"]
        print(f"  one client past {HAMMER_RATE}: {o['hammer']}, the other {o['calm']}", flush=True)
    out["middleware"] = middleware_alone(path, made["bench"])
    print(f"  the middleware alone: {out['middleware']['cost_us']:.1f} µs a request", flush=True)
    return out


def run_auth(r: dict, work: Path, scale: float, logs: Path) -> None:
    """Build churn (from the cache when another case built it) and ``bench_auth`` on it."""
    from benchmarks.build import NOTEBOOKS, open_built
    from nb2prod.builder.pipeline import build

    result = build(NOTEBOOKS["churn"], out_dir=work / "bentos", gate=False)
    built = open_built("churn", result, work)
    r["auth"] = bench_auth(built.tag, built.payloads(), scale=scale, logs=logs, work=work)


def ratios(r: dict[str, Any]) -> dict[str, float]:
    """The case's figure against its target, for ``benchmarks.report``."""
    lat = (r.get("auth") or {}).get("latency")
    return {"auth_cost_p50_c1_ms": lat["p50_cost_ms"]} if lat else {}


def errors(r: dict[str, Any]) -> int:
    """Non-200 answers in the on/off runs, and keyed checks that did not hold."""
    a = r.get("auth") or {}
    if not a:
        return 0
    n = a["latency"]["on"]["errors"] + a["latency"]["off"]["errors"]
    s = a["schemathesis"]
    n += s["problem_count"]  # a 401 with the key, a keyless non-401, a 5xx, a non-JSON 4xx
    n += len(a["keyless"]["wrong"])
    o = a["client_overload"]
    n += sum(v for k, v in o["calm"].items() if k != "200") + len(o["hammer_problems"])
    return n


def lines(r: dict[str, Any]) -> list[str]:
    """The case in the bench's table: the on/off figures, the middleware, the checks."""
    a = r.get("auth") or {}
    if not a:
        return []
    lat, o = a["latency"], a["client_overload"]
    return [
        (
            f"auth c=1: keys + limits on p50 {lat['on']['p50_ms']:.2f} / p95 "
            f"{lat['on']['p95_ms']:.2f} ms, off p50 {lat['off']['p50_ms']:.2f} / p95 "
            f"{lat['off']['p95_ms']:.2f} ms over {lat['on']['requests']} requests each; middleware "
            f"alone {a['middleware']['cost_us']:.1f} µs"
        ),
        (
            f"auth checks: schemathesis with a key {a['schemathesis']['cases']} cases "
            f"{a['schemathesis']['statuses']}; without a key {len(a['keyless']['routes'])} routes, "
            f"{len(a['keyless']['wrong'])} wrong; one client past {HAMMER_RATE} {o['hammer']}, "
            f"the other {o['calm']}"
        ),
    ]
