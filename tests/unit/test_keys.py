"""The keys file (add, list, revoke, atomic 0600 writes), key checks and token buckets."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from nb2prod.serving import keys


def test_add_prints_the_key_once_and_stores_only_its_salted_hash(tmp_path):
    path = tmp_path / "keys.json"
    key = keys.add_key(path, "alice", "50/s burst=100")
    text = path.read_text()
    assert key not in text and key.split(".")[2] not in text
    entry = json.loads(text)["keys"]["alice"]
    assert entry["rate"] == "50/s burst=100" and entry["revoked"] is None
    assert bytes.fromhex(entry["hash"]) == keys._derive(key, bytes.fromhex(entry["salt"]))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = keys.add_key(path, "bob")
    assert other != key
    assert [e["name"] for e in keys.list_keys(path)] == ["alice", "bob"]
    assert all(set(e) == {"name", "created", "revoked", "rate"} for e in keys.list_keys(path))


def test_write_is_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    keys.add_key(path, "alice")
    before = path.read_text()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(keys.os, "replace", boom)
    with pytest.raises(OSError):
        keys.add_key(path, "bob")
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary file left


def test_names_rates_duplicates_and_revocation(tmp_path):
    path = tmp_path / "keys.json"
    with pytest.raises(keys.KeyFileError, match="not a key name"):
        keys.add_key(path, "bad name")
    with pytest.raises(keys.KeyFileError, match="not a rate"):
        keys.add_key(path, "alice", "fast")
    keys.add_key(path, "alice")
    with pytest.raises(keys.KeyFileError, match="already exists"):
        keys.add_key(path, "alice")
    keys.revoke_key(path, "alice")
    assert keys.list_keys(path)[0]["revoked"]
    with pytest.raises(keys.KeyFileError, match="no key named"):
        keys.revoke_key(path, "carol")
    keys.add_key(path, "alice")  # a revoked name may be given a new key


@pytest.mark.parametrize(
    ("text", "per_second", "burst"),
    [("50/s burst=100", 50.0, 100), ("600/min", 10.0, 10), ("1/h", 1 / 3600, 1), ("2.5/s", 2.5, 3)],
)
def test_parse_rate(text, per_second, burst):
    rate = keys.parse_rate(text)
    assert (rate.per_second, rate.burst) == (pytest.approx(per_second), burst)


def test_lookup_checks_caches_and_sees_revocation_without_restart(tmp_path):
    path = tmp_path / "keys.json"
    key = keys.add_key(path, "alice", "5/s")
    store = keys.Keys(path)
    assert store.lookup(key) == ("alice", keys.parse_rate("5/s"))
    assert store.cached(key)
    started = time.perf_counter()
    for _ in range(1000):
        store.lookup(key)
    assert (time.perf_counter() - started) / 1000 < 1e-4  # cached: no scrypt per call
    assert store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.lookup("nb2p.000000000000.x") is None and store.lookup("garbage") is None
    keys.revoke_key(path, "alice")
    store.refresh()
    assert not store.cached(key) and store.lookup(key) is None


def test_an_unknown_id_costs_a_derivation_too(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    keys.add_key(path, "alice")
    store = keys.Keys(path)
    calls = []
    real = keys._derive
    monkeypatch.setattr(keys, "_derive", lambda k, s: calls.append(k) or real(k, s))
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: calls.append("cmp") or a == b)
    for key in ("nb2p.ffffffffffff.secret", "no-dots", "x.y.z"):
        assert store.verify(key) is None
    assert calls == ["nb2p.ffffffffffff.secret", "cmp", "no-dots", "cmp", "x.y.z", "cmp"]


def test_a_broken_or_missing_file_refuses_every_key(tmp_path):
    path = tmp_path / "keys.json"
    key = keys.add_key(path, "alice")
    path.write_text("{not json")
    store = keys.Keys(path)
    assert store.error and store.lookup(key) is None
    path.unlink()
    store.refresh()
    assert "does not exist" in store.error


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_refill_and_wait():
    clock = Clock()
    buckets = keys.Buckets(clock)
    rate = keys.parse_rate("2/s burst=3")
    assert [buckets.take("a", rate) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", rate) == pytest.approx(0.5)  # one token takes 1/2 s
    assert buckets.take("b", rate) == 0.0  # another client has its own bucket
    clock.now += 0.25
    assert buckets.take("a", rate) == pytest.approx(0.25)
    clock.now += 0.25
    assert buckets.take("a", rate) == 0.0
    clock.now += 100
    assert [buckets.take("a", rate) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # capped at burst


def test_buckets_past_the_cap_drop_idle_clients(monkeypatch):
    monkeypatch.setattr(keys, "MAX_BUCKETS", 3)
    clock = Clock()
    buckets = keys.Buckets(clock)
    rate = keys.parse_rate("1/s burst=1")
    for client in "abc":
        buckets.take(client, rate)
    clock.now += 0.5
    buckets.take("c", rate)
    clock.now += 0.6  # a and b idle 1.1 s: full again; c only 0.6 s
    buckets.take("d", rate)
    assert set(buckets._buckets) == {"c", "d"}
