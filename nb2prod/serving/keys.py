"""API keys and rate limits: the keys file, key checks, and per-client token buckets.

Copied into every bento as ``nb2prod_keys.py`` (stdlib only); ``nb2prod keys`` writes the
file with the same functions. The file (``NB2PROD_API_KEYS_FILE`` at serve time, never in the
bento) is JSON, mode 0600, replaced atomically on every change::

    {"version": 1, "keys": {"<name>": {"id": "<hex>", "salt": "<hex>", "hash": "<hex>",
      "created": "<UTC ISO>", "revoked": null | "<UTC ISO>", "rate": null | "50/s burst=100"}}}

A key reads ``nb2p.<id>.<secret>``: ``id`` finds its entry in O(1), and ``hash`` is
scrypt(key, salt). The key itself is stored nowhere: it is printed once, when added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_FILE = "NB2PROD_API_KEYS_FILE"
ENV_RATE = "NB2PROD_RATE_LIMIT"
PREFIX = "nb2p"
FILE_MODE = 0o600
# scrypt's cost: about 40 ms a check here, paid once per key string thanks to Keys' cache
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32, "maxmem": 64 * 2**20}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
RATE = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|m|min|minute|h|hour)"
    r"(?:\s+burst\s*=\s*(?P<burst>\d+))?\s*$"
)
UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
CACHE_SIZE = 4096  # key strings remembered (valid or not); the cache is cleared when full
MAX_BUCKETS = 10_000  # clients tracked; idle (full) buckets are dropped past it


class KeyFileError(ValueError):
    """The keys file, a key name or a rate is malformed; the message says which and where."""


@dataclass(frozen=True)
class Rate:
    """A token bucket's refill ``per_second`` and ``burst`` size, and how it was written."""

    per_second: float
    burst: int
    text: str


def parse_rate(text: str) -> Rate:
    """Parse ``"50/s burst=100"`` (units s, m, h; burst defaults to one second's worth)."""
    match = RATE.match(text or "")
    if not match or float(match["n"]) <= 0:
        raise KeyFileError(f"{text!r} is not a rate such as '50/s burst=100' or '600/min'.")
    per_second = float(match["n"]) / UNITS[match["unit"]]
    burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(per_second))
    if burst < 1:
        raise KeyFileError(f"{text!r}: burst must be at least 1.")
    return Rate(per_second, burst, " ".join(text.split()))


def _derive(key: str, salt: bytes) -> bytes:
    return hashlib.scrypt(key.encode("utf-8"), salt=salt, **SCRYPT)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The keys file's entries by name; a missing file has none."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"The keys file {path} cannot be read: {exc}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise KeyFileError(f"The keys file {path} has no 'keys' mapping.")
    return data["keys"]


def write_file(path: str | os.PathLike[str], entries: dict[str, dict[str, Any]]) -> None:
    """Write the keys file atomically (a 0600 temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": 1, "keys": entries}, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_key(path: str | os.PathLike[str], name: str, rate: str | None = None) -> str:
    """Add a key called ``name`` to the file and return the key (shown once, stored never)."""
    if not NAME.match(name):
        raise KeyFileError(
            f"{name!r} is not a key name: use letters, digits and _.@- (64 at most)."
        )
    if rate is not None:
        rate = parse_rate(rate).text
    entries = read_file(path)
    if name in entries and not entries[name].get("revoked"):
        raise KeyFileError(f"A key named {name!r} already exists in {path}; revoke it first.")
    key_id, salt = secrets.token_hex(6), secrets.token_bytes(16)
    key = f"{PREFIX}.{key_id}.{secrets.token_urlsafe(32)}"
    entries[name] = {
        "id": key_id,
        "salt": salt.hex(),
        "hash": _derive(key, salt).hex(),
        "created": _now(),
        "revoked": None,
        "rate": rate,
    }
    write_file(path, entries)
    return key


def revoke_key(path: str | os.PathLike[str], name: str) -> None:
    """Mark the key called ``name`` revoked (kept, so the file shows when)."""
    entries = read_file(path)
    if name not in entries:
        raise KeyFileError(f"There is no key named {name!r} in {path}.")
    if not entries[name].get("revoked"):
        entries[name]["revoked"] = _now()
        write_file(path, entries)


def list_keys(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Each key's name, created, revoked and rate: nothing that helps to guess it."""
    return [
        {"name": name, **{f: e.get(f) for f in ("created", "revoked", "rate")}}
        for name, e in sorted(read_file(path).items())
    ]


class Keys:
    """The keys of one file, checked in constant time, with each key string's answer cached.

    The file is read again when its inode, size or mtime changes (checked on every call), so
    a revocation takes effect on the next request without a restart.
    """

    _DUMMY_SALT = bytes(16)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, tuple[str, bytes, bytes, Rate | None]] = {}
        self._cache: dict[bytes, tuple[str, Rate | None] | None] = {}
        self.error: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file if it changed; a bad file denies every key and sets ``error``."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = (0, 0, 0)
        if stamp == self._stamp:
            return
        self._stamp, self._cache = stamp, {}
        try:
            if stamp == (0, 0, 0):
                raise KeyFileError(f"The keys file {self.path} does not exist.")
            by_id = {}
            for name, e in read_file(self.path).items():
                if not e.get("revoked"):
                    rate = parse_rate(e["rate"]) if e.get("rate") else None
                    by_id[e["id"]] = (
                        name,
                        bytes.fromhex(e["salt"]),
                        bytes.fromhex(e["hash"]),
                        rate,
                    )
            self._by_id, self.error = by_id, None
        except (KeyFileError, KeyError, TypeError, ValueError) as exc:
            self._by_id, self.error = {}, f"{exc}; every key is refused"

    def lookup(self, key: str) -> tuple[str, Rate | None] | None:
        """``(name, rate override)`` for a valid, unrevoked key; None otherwise."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        try:
            return self._cache[digest]
        except KeyError:
            pass
        found = self.verify(key)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[digest] = found
        return found

    def cached(self, key: str) -> bool:
        """Whether ``lookup(key)`` answers from memory, without paying scrypt."""
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest() in self._cache

    def verify(self, key: str) -> tuple[str, Rate | None] | None:
        """Check ``key`` with scrypt and ``hmac.compare_digest``; an unknown id costs the same."""
        parts = key.split(".")
        entry = self._by_id.get(parts[1]) if len(parts) == 3 and parts[0] == PREFIX else None
        name, salt, stored, rate = entry or ("", self._DUMMY_SALT, bytes(32), None)
        ok = hmac.compare_digest(_derive(key, salt), stored)
        return (name, rate) if ok and entry is not None else None


class Buckets:
    """One token bucket per client; ``take`` is O(1) and answers the seconds to wait, or 0."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, last refill]
        self._lock = threading.Lock()

    def take(self, client: str, rate: Rate) -> float:
        """Take one token from ``client``'s bucket; 0 when granted, else seconds until one is."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._prune(now, rate)
                bucket = self._buckets[client] = [float(rate.burst), now]
            tokens = min(float(rate.burst), bucket[0] + (now - bucket[1]) * rate.per_second)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / rate.per_second

    def _prune(self, now: float, rate: Rate) -> None:
        # a bucket idle long enough to be full again holds no state worth keeping
        idle = rate.burst / rate.per_second
        for client in [c for c, (_, last) in self._buckets.items() if now - last >= idle]:
            del self._buckets[client]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()
