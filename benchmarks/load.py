"""A bounded async HTTP load generator: a fixed number of requests at a fixed concurrency."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LoadResult:
    """What one load run saw. Latencies are in milliseconds."""

    requests: int
    concurrency: int
    rows_per_request: int
    seconds: float
    statuses: dict[str, int]
    errors: int  # transport failures plus any non-2xx answer
    p50_ms: float
    p99_ms: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    failures: list[str] = field(repr=False, default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows_per_request

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith("5"))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("latencies_ms")
        out["failures"] = self.failures[:10]
        return {**out, "rps": self.rps, "rows_per_s": self.rows_per_s}


def merge(results: list[LoadResult]) -> LoadResult:
    """One result from several runs at the same concurrency (rounds interleaved with others)."""
    statuses: Counter = Counter()
    for r in results:
        statuses.update(r.statuses)
    latencies = [ms for r in results for ms in r.latencies_ms]
    return LoadResult(
        requests=sum(r.requests for r in results),
        concurrency=results[0].concurrency,
        rows_per_request=results[0].rows_per_request,
        seconds=sum(r.seconds for r in results),
        statuses=dict(statuses),
        errors=sum(r.errors for r in results),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        latencies_ms=latencies,
        failures=[f for r in results for f in r.failures],
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def _run(
    url: str, bodies: list[bytes], requests: int, concurrency: int, timeout: float
) -> tuple[float, Counter, list[float], list[str]]:
    import aiohttp

    statuses: Counter = Counter()
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(requests))
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def worker() -> None:
            for i in counter:
                start = time.perf_counter()
                try:
                    async with session.post(
                        url, data=bodies[i % len(bodies)], headers=headers
                    ) as r:
                        await r.read()
                        statuses[str(r.status)] += 1
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses, latencies, failures


def load(
    url: str,
    payloads: list[Any],
    *,
    requests: int,
    concurrency: int,
    rows_per_request: int = 1,
    timeout: float = 120,
) -> LoadResult:
    """POST ``requests`` bodies (cycling through ``payloads``) to ``url``, ``concurrency`` at once."""
    bodies = [json.dumps(p).encode() for p in payloads]
    seconds, statuses, latencies, failures = asyncio.run(
        _run(url, bodies, requests, concurrency, timeout)
    )
    bad = sum(n for s, n in statuses.items() if not s.startswith("2"))
    return LoadResult(
        requests=requests,
        concurrency=concurrency,
        rows_per_request=rows_per_request,
        seconds=seconds,
        statuses=dict(statuses),
        errors=bad,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        latencies_ms=latencies,
        failures=failures,
    )
