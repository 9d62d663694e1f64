"""Hardening checks against a served bento: load, fuzzing, SIGTERM, overload, no network,
a flood of invalid rows, slow senders and oversized bodies.

Each returns plain data; ``tests/e2e/test_hardening.py`` runs them bounded and asserts on the
result, ``python -m benchmarks`` runs them full size and records the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.load import LoadResult, load
from benchmarks.servers import Server

OVERLOAD_STATUS = 429  # traffic.max_concurrency answers at once; see docs/performance.md
HEALTH = ("/healthz", "/readyz", "/livez")  # open with keys on (nb2prod/serving/auth.py)


def load_check(
    url: str, payloads: list[Any], *, requests: int, concurrency: int = 64
) -> LoadResult:
    """``requests`` POSTs to ``/predict`` at ``concurrency``; the caller asserts 0 errors."""
    return load(f"{url}/predict", payloads, requests=requests, concurrency=concurrency)


def schemathesis_check(url: str, *, examples: int, key: str | None = None) -> dict[str, Any]:
    """Generated cases (valid and invalid) for every operation of the bento's own OpenAPI.

    Counts the cases, the 5xx answers, and the 4xx answers whose body is not a JSON object.
    With ``key``, the document is read with it and schemathesis is given it for the document's
    ``bearerAuth`` scheme (its auth config, not a header of ours): a case it sends with the
    key counts in ``with_key`` and any 401 of those in ``unauthorized_with_key``; a negative
    case in which schemathesis itself drops or garbles the key counts in ``without_key``, by
    status, and a non-health route answering it anything but 401 is a problem.
    """
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    bearer = f"Bearer {key}" if key else None
    if key:
        config = schemathesis.Config.from_dict(
            {"auth": {"openapi": {"bearerAuth": {"bearer": key}}}}
        )
        schema = schemathesis.openapi.from_url(
            f"{url}/docs.json", config=config, headers={"Authorization": bearer}
        )
    else:
        schema = schemathesis.openapi.from_url(f"{url}/docs.json")
    keyed: Counter = Counter()
    operations = [op.ok() for op in schema.get_all_operations()]
    # The POST operations can make as many cases as asked; the GETs run out after a few.
    per_operation = max(1, examples // 2)
    seen: Counter = Counter()
    bad: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=per_operation,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call(base_url=url, timeout=60)
                status = response.status_code
                seen[f"{status // 100}xx"] += 1
                label = f"{case.method} {case.path} -> {status}"
                if bearer is not None:
                    sent = response.request.headers.get("Authorization") == bearer
                    keyed["with_key" if sent else f"without_key {status}"] += 1
                    if sent and status == 401:
                        keyed["unauthorized_with_key"] += 1
                        bad.append(f"{label} although the key was sent")
                    elif not sent and status != 401 and case.path not in HEALTH:
                        bad.append(f"{label} without the key")
                if status >= 500:
                    bad.append(f"{label}: {response.text[:200]}")
                elif status >= 400 and not _json_object(response):
                    bad.append(f"{label} without a JSON body: {response.text[:200]}")

            try:
                run()
            except Unsatisfiable:  # e.g. no invalid request exists for a GET without parameters
                continue
    return {
        "operations": len(operations),
        "cases": sum(seen.values()),
        "statuses": dict(seen),
        "server_errors": seen["5xx"],
        "problems": bad[:20],
        "problem_count": len(bad),
        **({"declares_bearer": schema.raw_schema.get("security"), **keyed} if key else {}),
    }


def _json_object(response: Any) -> bool:
    try:
        return isinstance(json.loads(response.content), (dict, list))
    except ValueError:
        return False


def keyless_check(url: str, key: str) -> dict[str, Any]:
    """Every operation of the served ``/docs.json`` (read with ``key``), plus ``/docs.json``,
    ``/metrics`` and the Swagger page, called without a key; and the health routes.

    ``routes`` maps ``"METHOD /path"`` to its status; ``wrong`` lists each non-health route
    not answered 401 and each health route not answered 200; ``bodies`` counts the distinct
    401 bodies (one: nothing tells a missing key from a wrong one).
    """
    import httpx

    with httpx.Client(base_url=url, timeout=60) as http:
        doc = http.get("/docs.json", headers={"Authorization": f"Bearer {key}"})
        doc.raise_for_status()
        methods = {"get", "post", "put", "patch", "delete", "head", "options"}
        routes = [
            (method.upper(), path)
            for path, item in doc.json().get("paths", {}).items()
            for method in item
            if method in methods
        ]
        routes += [("GET", p) for p in ("/docs.json", "/metrics", "/", *HEALTH)]
        answers: dict[str, int] = {}
        bodies: set[bytes] = set()
        for method, path in dict.fromkeys(routes):
            filled = re.sub(r"\{[^}]*\}", "x", path)
            kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
            answer = http.request(method, filled, **kwargs)
            answers[f"{method} {path}"] = answer.status_code
            if answer.status_code == 401:
                bodies.add(answer.content)
    wrong = [
        f"{route} -> {status}"
        for route, status in answers.items()
        if status != (200 if route.split(" ", 1)[1] in HEALTH else 401)
    ]
    return {
        "documented": len(doc.json().get("paths", {})),
        "routes": answers,
        "wrong": wrong,
        "bodies": len(bodies),
    }


async def _hammer_and_calm(
    url: str, body: bytes, hammer: str, calm: str, concurrency: int, calm_requests: int, gap: float
) -> dict[str, Any]:
    import httpx

    def head(key: str) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {key}"}

    hammered: Counter = Counter()
    problems: list[str] = []
    calm_statuses: Counter = Counter()
    calm_ms: list[float] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def hammering() -> None:
            while not done.is_set():
                answer = await http.post("/predict", content=body, headers=head(hammer))
                hammered[str(answer.status_code)] += 1
                if answer.status_code == 429:
                    retry = answer.headers.get("retry-after", "")
                    if not retry.isdigit() or int(retry) < 1:
                        problems.append(f"429 with Retry-After {retry!r}")
                    elif not _json_object(answer) or "limit" not in answer.json():
                        problems.append(f"429 without a JSON body naming the limit: {answer.text}")

        async def calming() -> None:
            await asyncio.sleep(gap)  # the hammer is past its burst by now
            for _ in range(calm_requests):
                sent = time.perf_counter()
                answer = await http.post("/predict", content=body, headers=head(calm))
                calm_ms.append((time.perf_counter() - sent) * 1000)
                calm_statuses[str(answer.status_code)] += 1
                await asyncio.sleep(gap)
            done.set()

        await asyncio.wait_for(
            asyncio.gather(calming(), *(hammering() for _ in range(concurrency))), 300
        )
    return {
        "hammer": dict(hammered),
        "hammer_problems": problems[:10],
        "calm": dict(calm_statuses),
        "calm_p50_ms": _percentile(calm_ms, 0.5),
        "calm_max_ms": max(calm_ms, default=None),
    }


def client_overload_check(
    url: str,
    body: dict,
    hammer: str,
    calm: str,
    *,
    concurrency: int = 8,
    calm_requests: int = 20,
    gap: float = 0.05,
) -> dict[str, Any]:
    """The ``hammer`` key's client sends as fast as ``concurrency`` connections allow, past its
    own rate, while the ``calm`` key's client sends ``calm_requests`` requests ``gap`` s apart.

    Every 429 must carry ``Retry-After`` (whole seconds, at least 1) and a JSON body naming the
    limit (``hammer_problems`` lists those that did not); the calm client must get only 200s.
    """
    data = json.dumps(body).encode()
    return asyncio.run(_hammer_and_calm(url, data, hammer, calm, concurrency, calm_requests, gap))


async def _sigterm(url: str, body: bytes, server: Server, after: int, concurrency: int) -> dict:
    import aiohttp

    outcomes: Counter = Counter()
    dropped: list[str] = []
    done = asyncio.Event()
    sent = 0
    signalled = asyncio.Event()
    # One connection per request, so a failure is about that request and not a stale socket.
    connector = aiohttp.TCPConnector(force_close=True, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal sent
            sent += 1
            answered = False
            try:
                async with session.post(
                    f"{url}/predict", data=body, headers={"content-type": "application/json"}
                ) as resp:
                    answered = True
                    payload = await resp.read()
                    json.loads(payload)  # a cut-off body would not parse
                    outcomes[str(resp.status)] += 1
            except aiohttp.ClientConnectorError:
                outcomes["refused"] += 1  # never accepted: the server had stopped listening
                done.set()
            except (aiohttp.ClientError, ValueError, asyncio.TimeoutError) as exc:
                # Reset before any response: the connection sat in the closed listener's
                # backlog and the request never reached the app (the server log proves it).
                kind = "dropped" if answered else "unanswered"
                outcomes[kind] += 1
                if answered:
                    dropped.append(f"{type(exc).__name__}: {exc}")
                done.set()
            if sum(outcomes.values()) >= after and not signalled.is_set():
                signalled.set()
                os.kill(server.proc.pid, signal.SIGTERM)

        async def worker() -> None:
            while not done.is_set():
                await one()

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 120)
    return {"outcomes": dict(outcomes), "dropped": dropped[:10], "sent": sent}


def sigterm_check(server: Server, body: dict, *, after: int = 200, concurrency: int = 16) -> dict:
    """Load ``server``, SIGTERM it after ``after`` answers; every accepted request must finish.

    A request either gets a whole response, or is refused or reset before any response (it
    never reached the app). ``dropped`` counts responses cut off midway, and must be 0; and
    the server's access log must count exactly the responses the client received.
    """
    data = json.dumps(body).encode()
    result = asyncio.run(_sigterm(server.url, data, server, after, concurrency))
    result["exit_code"] = server.proc.wait(timeout=90)
    # Every request the app began must have reached the client whole.
    log = server.log.read_text(errors="replace")
    result["server_answered"] = log.count("path=/predict,")
    result["client_received"] = sum(n for k, n in result["outcomes"].items() if k.isdigit())
    return result


def overload_check(url: str, body: dict, *, concurrency: int, requests: int) -> dict:
    """Far more concurrent requests than the server allows: each is answered, none hangs."""
    result = load(f"{url}/predict", [body], requests=requests, concurrency=concurrency, timeout=60)
    return {**result.to_dict(), "statuses": result.statuses}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _flood(url: str, body: bytes, interval: float) -> dict[str, Any]:
    import httpx

    health: list[float] = []
    failed_health = 0
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        big = asyncio.create_task(
            client.post(
                f"{url}/predict", content=body, headers={"content-type": "application/json"}
            )
        )
        while not big.done():
            sent = time.perf_counter()
            try:
                answer = await client.get(f"{url}/healthz", timeout=10)
                health.append(time.perf_counter() - sent)
                failed_health += answer.status_code != 200
            except httpx.HTTPError:
                failed_health += 1
            await asyncio.sleep(interval)
        response = await big
        seconds = time.perf_counter() - started
    data = response.json()
    return {
        "status": response.status_code,
        "seconds": seconds,
        "listed": len(data.get("failures", [])),
        "error": data.get("error", "")[:200],
        "healthz": len(health),
        "healthz_failed": failed_health,
        "healthz_p99_ms": 1000 * (_percentile(health, 0.99) or 0),
        "healthz_max_ms": 1000 * max(health, default=0),
    }


def invalid_flood_check(url: str, row: dict, *, rows: int = 10_000, interval: float = 0.02) -> dict:
    """One request of ``rows`` invalid rows, with ``/healthz`` timed while it is answered."""
    body = json.dumps({"rows": [row] * rows}).encode()
    return {"rows": rows, "body_mb": len(body) / 2**20, **asyncio.run(_flood(url, body, interval))}


def _raw_post(url: str, body: bytes, *, declared: int | None = None) -> tuple[Any, bytes]:
    """A socket with the request line, headers and the start of ``body`` sent."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    length = len(body) if declared is None else declared
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock, body


def _status(sock: Any) -> int | None:
    try:
        line = sock.recv(4096).split(b"\r\n", 1)[0]
        return int(line.split()[1]) if line.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None


def oversized_body_check(url: str, *, megabytes: int = 100) -> dict:
    """Announce a ``megabytes`` body, send its first bytes: the 413 comes before the rest."""
    started = time.perf_counter()
    sock, _ = _raw_post(url, b'{"rows": [', declared=megabytes * 2**20)
    try:
        status = _status(sock)
    finally:
        sock.close()
    return {"megabytes": megabytes, "status": status, "seconds": time.perf_counter() - started}


def slow_sender_check(
    url: str, good: dict, *, senders: int = 300, gap: float = 2.0, probes: int = 40
) -> dict:
    """``senders`` clients that send a byte every ``gap`` s, while good requests keep coming.

    The slow ones are cut off at the body deadline (408), and the good ones are answered
    meanwhile; before the deadline existed, they held every concurrency slot (429s).
    """
    import httpx

    body = json.dumps(good).encode()
    slow = []
    for _ in range(senders):
        try:
            slow.append(_raw_post(url, b"", declared=len(body))[0])
        except OSError:
            break
    statuses: Counter[str] = Counter()
    timeline: list[tuple[float, str]] = []  # (seconds since the slow senders started, status)
    started = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        for i in range(probes):
            for sock in slow:
                try:
                    sock.send(body[i % len(body) : i % len(body) + 1])
                except OSError:
                    pass
            sent = time.perf_counter() - started
            try:
                status = str(client.post(f"{url}/predict", json=good).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            statuses[status] += 1
            timeline.append((round(sent, 3), status))
            time.sleep(gap / 4)
    cut: Counter[str] = Counter()
    for sock in slow:
        sock.settimeout(0.5)
        cut[str(_status(sock))] += 1
        sock.close()
    return {
        "senders": len(slow),
        "good_statuses": dict(statuses),
        "good_timeline": timeline,
        "slow_statuses": dict(cut),
        "seconds": time.perf_counter() - started,
    }


def nonfinite_batch_check(url: str, good: list[dict], bad: dict, *, concurrency: int = 16) -> dict:
    """Good one-row requests and one row whose features overflow, all at once: only it fails."""
    import httpx

    async def main() -> list[tuple[str, int, Any]]:
        async with httpx.AsyncClient(timeout=60) as client:
            gate = asyncio.Semaphore(concurrency)

            async def send(kind: str, row: dict) -> tuple[str, int, Any]:
                async with gate:
                    answer = await client.post(f"{url}/predict", json={"rows": [row]})
                    return kind, answer.status_code, answer.json()

            jobs = [send("good", row) for row in good]
            jobs.insert(len(jobs) // 2, send("bad", bad))
            return await asyncio.gather(*jobs)

    answers = asyncio.run(main())
    good_statuses = Counter(str(s) for kind, s, _ in answers if kind == "good")
    (bad_answer,) = [(s, body) for kind, s, body in answers if kind == "bad"]
    return {
        "good_statuses": dict(good_statuses),
        "bad_status": bad_answer[0],
        "bad_failures": bad_answer[1].get("failures"),
    }


def offline_check(target: str, body: dict, env: dict[str, str] | None = None) -> dict:
    """Serve ``target`` inside a new network namespace that has only loopback; predict once.

    Needs root (``unshare -n``). The server and the client both live in the namespace, so
    nothing can leave the machine; the answer is the JSON this module prints in there.
    """
    script = (
        "ip link set lo up && exec "
        f"{sys.executable} -m benchmarks.hardening offline {json.dumps(target)} "
        f"{json.dumps(json.dumps(body))}"
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parent.parent,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"ok": False, "returncode": proc.returncode, "stderr": proc.stderr[-2000:]}
    return {"ok": True, **json.loads(lines[-1])}


def _offline_main(target: str, body: str) -> None:
    """Inside the namespace: serve, check there is no route out, predict, stop."""
    import socket
    import tempfile
    import urllib.request

    from benchmarks.servers import bentoml_command, running

    try:
        socket.create_connection(("192.0.2.1", 80), timeout=2)  # TEST-NET-1: must not route
        reachable = True
    except OSError:
        reachable = False
    start = time.monotonic()
    with running(lambda p: bentoml_command(target, p), log_dir=Path(tempfile.mkdtemp())) as srv:
        ready_s = time.monotonic() - start
        request = urllib.request.Request(
            f"{srv.url}/predict", body.encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            status, answer = resp.status, json.loads(resp.read())
    print(
        json.dumps({"status": status, "answer": answer, "ready_s": ready_s, "outside": reachable})
    )


if __name__ == "__main__":  # python -m benchmarks.hardening offline TARGET BODY
    if sys.argv[1:2] == ["offline"]:
        _offline_main(sys.argv[2], sys.argv[3])
