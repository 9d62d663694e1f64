"""API keys and per-client rate limits at the service's door, as ASGI middleware.

Copied into every bento as ``nb2prod_auth.py`` and added first (outermost of nb2prod's
middleware) with ``add_asgi_middleware``. With ``NB2PROD_API_KEYS_FILE`` set, every route
but ``/healthz``, ``/readyz`` and ``/livez`` (and ``/metrics`` with ``NB2PROD_METRICS_OPEN=1``)
needs ``Authorization: Bearer <key>``; a missing, wrong or revoked key gets the same 401. A key's
*name* goes into ``scope["state"]["nb2prod_client"]`` for the prediction log; the key does not.

With ``NB2PROD_RATE_LIMIT`` (e.g. ``"50/s burst=100"``) or a key's own ``rate``, each client
(its key name, or its address when anonymous) has a token bucket in this worker process;
past it the answer is 429 with ``Retry-After``, at once. ``/docs.json`` declares the bearer
scheme when keys are on, so generated clients and schemathesis send the key.

Environment (read at serve time):
    NB2PROD_API_KEYS_FILE: the keys file ``nb2prod keys add`` writes. Unset: no keys, open.
    NB2PROD_RATE_LIMIT: the default per-client rate. Unset: no limit unless a key has one.
    NB2PROD_METRICS_OPEN: ``1`` leaves ``/metrics`` open for a scraper without a key.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# The keys module by its name here: nb2prod_keys in a bento, nb2prod.serving.keys in nb2prod
keys = importlib.import_module(__name__.rpartition("auth")[0] + "keys")

ENV_METRICS_OPEN = "NB2PROD_METRICS_OPEN"
HEALTH = frozenset({"/healthz", "/readyz", "/livez"})
STATE_KEY = "nb2prod_client"
UNAUTHORIZED = "A valid API key is required: send the header 'Authorization: Bearer <key>'."
SECURITY = {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "nb2prod API key"}}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
log = logging.getLogger("nb2prod.auth")


def client_of(scope: Scope) -> str | None:
    """The key name the middleware put in ``scope``; None for an anonymous request."""
    return (scope.get("state") or {}).get(STATE_KEY)


class KeysAndLimits:
    """ASGI middleware: bearer keys (401) and per-client token buckets (429)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        model_version: str = "",
        environ: MutableMapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.app = app
        self.model_version = model_version
        path = env.get(keys.ENV_FILE, "").strip()
        self.keys = keys.Keys(path) if path else None
        rate = env.get(keys.ENV_RATE, "").strip()
        self.rate = keys.parse_rate(rate) if rate else None
        self.buckets = keys.Buckets(clock) if clock else keys.Buckets()
        self.open = HEALTH | ({"/metrics"} if env.get(ENV_METRICS_OPEN) == "1" else set())
        if self.keys is None:
            log.warning("no API keys (%s is unset): this service answers anyone", keys.ENV_FILE)
        elif self.keys.error:
            log.error("%s", self.keys.error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open:
            await self.app(scope, receive, send)
            return
        name, rate = None, self.rate
        if self.keys is not None:
            found = await self._authenticate(scope, send)
            if found is None:
                return  # answered: 401 or 429
            name, own = found
            rate = own or rate
            scope.setdefault("state", {})[STATE_KEY] = name
        if rate is not None and await self._limited(scope, send, name, rate):
            return
        if self.keys is not None and scope["path"] == "/docs.json":
            await self.app(scope, receive, _declare_bearer(send, self.open))
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, send: Send) -> tuple[str, Any] | None:
        self.keys.refresh()
        key = _bearer(scope)
        if key is None:
            await self._unauthorized(send)
            return None
        if not self.keys.cached(key):
            # a key string seen for the first time costs scrypt: charge the address's bucket
            # first, so guessing is rate limited, and check it off the event loop
            if self.rate is not None and await self._limited(scope, send, None, self.rate):
                return None
            found = await asyncio.to_thread(self.keys.lookup, key)
        else:
            found = self.keys.lookup(key)
        if found is None:
            await self._unauthorized(send)
        return found

    async def _limited(self, scope: Scope, send: Send, name: str | None, rate: Any) -> bool:
        client = f"key:{name}" if name is not None else f"addr:{(scope.get('client') or ('?',))[0]}"
        wait = self.buckets.take(client, rate)
        if not wait:
            return False
        retry = max(1, math.ceil(wait))
        message = f"Too many requests: this client's limit is {rate.text}; retry in {retry} s."
        await self._answer(send, 429, message, [(b"retry-after", str(retry).encode())], rate.text)
        return True

    async def _unauthorized(self, send: Send) -> None:
        await self._answer(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])

    async def _answer(
        self, send: Send, status: int, message: str, headers: list, limit: str | None = None
    ) -> None:
        body = {"error": message, "failures": [], "model_version": self.model_version}
        if limit is not None:
            body["limit"] = limit
        data = json.dumps(body).encode()
        head = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": head + headers})
        await send({"type": "http.response.body", "body": data})


def _bearer(scope: Scope) -> str | None:
    for header, value in scope.get("headers") or ():
        if header == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _declare_bearer(send: Send, open_paths: frozenset[str] | set[str]) -> Send:
    """Wrap ``send`` so the OpenAPI document gains the bearer scheme as its global security,
    and the operations of ``open_paths`` (health) say they need none."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        data = b"".join(chunks)
        if start["status"] == 200:
            try:
                spec = json.loads(data)
                spec.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY)
                spec["security"] = [{"bearerAuth": []}]
                for path in open_paths:
                    for op in (spec.get("paths") or {}).get(path, {}).values():
                        if isinstance(op, dict):
                            op["security"] = []
                data = json.dumps(spec).encode()
            except (ValueError, AttributeError):
                pass  # not the JSON document expected: pass it on unchanged
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return wrapped
