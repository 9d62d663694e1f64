"""The keys-and-limits middleware, driven in-process around a tiny Starlette app."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from nb2prod.serving import auth, keys


def _inner() -> Starlette:
    async def echo(request):
        return JSONResponse({"client": auth.client_of(request.scope)})

    async def spec(request):
        paths = {"/healthz": {"get": {}}, "/predict": {"post": {}}}
        return JSONResponse({"openapi": "3.0.2", "paths": paths})

    routes = [
        Route(p, echo, methods=["GET", "POST"]) for p in ("/predict", "/metadata", "/metrics")
    ]
    routes += [
        Route(p, lambda r: PlainTextResponse("ok")) for p in ("/healthz", "/readyz", "/livez")
    ]
    return Starlette(routes=[*routes, Route("/docs.json", spec)])


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _app(env: dict[str, str], clock: Clock | None = None) -> auth.KeysAndLimits:
    return auth.KeysAndLimits(_inner(), model_version="v1", environ=env, clock=clock)


def _get(app, path, key=None, client=("10.0.0.1", 5000), method="GET"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def go():
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.request(method, path, headers=headers)

    return asyncio.run(go())


@pytest.fixture
def keyfile(tmp_path):
    path = tmp_path / "keys.json"
    alice = keys.add_key(path, "alice")
    bob = keys.add_key(path, "bob")
    return path, alice, bob


def test_missing_wrong_and_revoked_keys_get_the_same_401(keyfile):
    path, alice, bob = keyfile
    app = _app({keys.ENV_FILE: str(path)})
    assert _get(app, "/predict", bob).status_code == 200
    keys.revoke_key(path, "bob")  # picked up on the next request: no restart
    answers = [
        _get(app, "/predict"),
        _get(app, "/predict", "nb2p.000000000000.wrong"),
        _get(app, "/predict", alice[:-2] + "xx"),
        _get(app, "/predict", bob),
        _get(app, "/metadata", "Basic " + alice),
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.content for r in answers}) == 1
    assert all(r.headers["www-authenticate"] == "Bearer" for r in answers)
    assert "alice" not in answers[0].text and "bob" not in answers[0].text


def test_a_valid_key_passes_with_its_name_in_the_scope_and_health_stays_open(keyfile):
    path, alice, _ = keyfile
    app = _app({keys.ENV_FILE: str(path)})
    assert _get(app, "/predict", alice, method="POST").json() == {"client": "alice"}
    assert _get(app, "/metadata").status_code == 401
    assert _get(app, "/metrics").status_code == 401
    for path_ in ("/healthz", "/readyz", "/livez"):
        assert _get(app, path_).status_code == 200
    opened = _app({keys.ENV_FILE: str(path), auth.ENV_METRICS_OPEN: "1"})
    assert _get(opened, "/metrics").status_code == 200


def test_no_keys_means_open_with_one_warning(caplog):
    with caplog.at_level("WARNING", logger="nb2prod.auth"):
        app = _app({})
    assert [r.message for r in caplog.records if "answers anyone" in r.message]
    assert _get(app, "/predict").json() == {"client": None}
    assert "security" not in _get(app, "/docs.json").json()


def test_the_openapi_document_declares_the_bearer_scheme(keyfile):
    path, alice, _ = keyfile
    app = _app({keys.ENV_FILE: str(path)})
    assert _get(app, "/docs.json").status_code == 401
    answer = _get(app, "/docs.json", alice)
    spec = answer.json()
    assert spec["security"] == [{"bearerAuth": []}]
    # the health routes stay open, and the document says so: an empty security list
    assert spec["paths"] == {"/healthz": {"get": {"security": []}}, "/predict": {"post": {}}}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert int(answer.headers["content-length"]) == len(answer.content)


def test_a_client_over_its_rate_gets_429_at_once_and_another_keeps_200(keyfile):
    path, alice, bob = keyfile
    clock = Clock()
    app = _app({keys.ENV_FILE: str(path), keys.ENV_RATE: "2/s burst=2"}, clock)
    assert [_get(app, "/predict", alice).status_code for _ in range(2)] == [200, 200]
    started = time.perf_counter()
    over = _get(app, "/predict", alice)
    assert time.perf_counter() - started < 0.5  # answered at once, not queued
    assert over.status_code == 429 and over.headers["retry-after"] == "1"
    assert over.json()["limit"] == "2/s burst=2" and "2/s burst=2" in over.json()["error"]
    assert [_get(app, "/predict", bob).status_code for _ in range(2)] == [200, 200]
    clock.now += 0.5
    assert _get(app, "/predict", alice).status_code == 200


def test_a_key_of_its_own_rate_and_anonymous_clients_by_address(tmp_path):
    path = tmp_path / "keys.json"
    slow = keys.add_key(path, "slow", "1/min")
    clock = Clock()
    app = _app({keys.ENV_FILE: str(path), keys.ENV_RATE: "100/s"}, clock)
    assert _get(app, "/predict", slow).status_code == 200
    over = _get(app, "/predict", slow)
    assert over.status_code == 429 and over.headers["retry-after"] == "60"
    anonymous = _app({keys.ENV_RATE: "1/s burst=1"}, clock)
    assert _get(anonymous, "/predict", client=("10.0.0.1", 1)).status_code == 200
    assert _get(anonymous, "/predict", client=("10.0.0.1", 2)).status_code == 429
    assert _get(anonymous, "/predict", client=("10.0.0.2", 1)).status_code == 200
    assert _get(anonymous, "/healthz", client=("10.0.0.1", 3)).status_code == 200


def test_a_cached_key_adds_little_time(keyfile):
    path, alice, _ = keyfile
    app = _app({keys.ENV_FILE: str(path), keys.ENV_RATE: "100000/s"})
    plain = _inner()
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/predict",
        "client": ("1.2.3.4", 1),
        "headers": [(b"authorization", f"Bearer {alice}".encode())],
    }

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    async def timed(asgi, n=2000):
        await asgi(dict(scope), receive, send)
        started = time.perf_counter()
        for _ in range(n):
            await asgi(dict(scope), receive, send)
        return (time.perf_counter() - started) / n

    added = asyncio.run(timed(app)) - asyncio.run(timed(plain))
    assert added < 3e-4, f"{added * 1e3:.3f} ms added per request"
