"""Limits at the service's door, before BentoML parses a request: size, type and read time.

Copied into every bento as ``nb2prod_limits.py`` and added to the service as ASGI middleware
(``add_asgi_middleware``). On the prediction routes it answers, with a JSON body:

- 415 when the body is not ``application/json`` (form and multipart posts included);
- 413 when ``Content-Length`` says the body is too large, before a byte is read, or when a
  body without one grows past the limit while it is read;
- 408 when the whole body has not arrived within the read deadline, so a slow sender gives
  its concurrency slot back instead of holding it.

Environment (read at serve time):
    NB2PROD_MAX_BODY_MB: the body limit in MiB. Default: sized from the service's MAX_ROWS.
    NB2PROD_BODY_TIMEOUT_S: seconds the whole body may take to arrive. Default 10.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

ENV_MAX_BODY_MB = "NB2PROD_MAX_BODY_MB"
ENV_BODY_TIMEOUT = "NB2PROD_BODY_TIMEOUT_S"
DEFAULT_BODY_TIMEOUT = 10.0
JSON = b"application/json"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
log = logging.getLogger("nb2prod.limits")


def _number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, os.environ[name], default)
        return default
    return value if value > 0 else default


class RequestLimits:
    """ASGI middleware holding the prediction routes to a body size, type and read time."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        max_body_bytes: int,
        model_version: str = "",
        paths: tuple[str, ...] = ("/predict", "/predict_proba"),
    ) -> None:
        self.app = app
        self.model_version = model_version
        self.paths = frozenset(paths)
        self.max_body = int(_number(ENV_MAX_BODY_MB, max_body_bytes / 2**20) * 2**20)
        self.timeout = _number(ENV_BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if media != JSON:
            shown = media.decode("latin-1") or "none"
            await self._answer(send, 415, f"The body must be application/json, not {shown}.")
            return
        length = headers.get(b"content-length", b"").strip()
        if length and (not length.isdigit() or int(length) > self.max_body):
            await self._answer(send, 413, self._too_large(length.decode("latin-1")))
            return
        body = await self._read(receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once the request has been answered (or has gone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                await self._answer(
                    send,
                    408,
                    f"The body did not arrive within {self.timeout:g} s "
                    f"({ENV_BODY_TIMEOUT} sets the deadline).",
                    close=True,
                )
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._answer(
                    send, 413, self._too_large(f"more than {self.max_body}"), close=True
                )
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _answer(self, send: Send, status: int, message: str, *, close: bool = False) -> None:
        await _answer(send, status, message, self.model_version, close=close)

    def _too_large(self, size: str) -> str:
        return (
            f"The body is {size} bytes; this service takes at most {self.max_body} "
            f"({ENV_MAX_BODY_MB} sets the limit)."
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(
    send: Send, status: int, message: str, model_version: str, *, close: bool = False
) -> None:
    body = json.dumps({"error": message, "failures": [], "model_version": model_version})
    body = body.encode()
    headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
