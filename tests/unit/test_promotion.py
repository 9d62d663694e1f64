"""Promotion and rollback in a real sqlite store, on real (tiny) bentos in the BentoML store:
what may be promoted, what --force needs, and how rollback walks the history.

The comparison of a challenger with the champion on evaluation data, and the shadow check,
need nb2prod bentos: tests/e2e/test_lifecycle.py runs them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from nb2prod.errors import PromotionError, RegistryError
from nb2prod.lifecycle import history, registry
from nb2prod.lifecycle.promotion import promote, rollback
from tests.support import register, tiny_bento


@pytest.fixture(scope="module")
def bentos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three real bentos in the session's BentoML store."""
    return [tiny_bento(tmp_path_factory.mktemp(f"tiny{i}")) for i in range(3)]


@pytest.fixture
def service(store: str, bentos: list[str], tmp_path: Path) -> str:
    """Versions 1-3 of a fresh service, one bento each; version 3 skipped the property gate."""
    name = f"svc{uuid.uuid4().hex[:6]}"
    for i, tag in enumerate(bentos):
        register(tmp_path / str(i), name, tag, gate=i < 2)
    return name


def aliases(name: str) -> dict[str, int]:
    return {a: v.number for v in registry.versions(name) for a in v.aliases}


def test_the_first_promotion_needs_no_comparison_and_takes_the_challenger_alias(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NB2PROD_USER", "ci-nightly")
    registry.set_alias(service, "challenger", 1)
    decision = promote(f"{service}@challenger")
    assert (decision.version, decision.previous, decision.forced) == (1, None, False)
    assert aliases(service) == {"champion": 1}
    (event,) = history.history(service)
    assert (event["action"], event["version"], event["user"]) == ("promote", 1, "ci-nightly")
    assert event["figures"]["gates"][0]["metric"] == "roc_auc"
    with pytest.raises(PromotionError, match=f"^{service} version 1 is already the champion"):
        promote(f"{service}:v1")


def test_a_version_built_without_the_property_gate_is_refused_unless_forced(
    service: str,
) -> None:
    with pytest.raises(PromotionError) as refused:
        promote(f"{service}:v3")
    assert str(refused.value) == (
        f"{service} version 3 was built without passing the property gate (skipped): rebuild "
        'it without --no-gate, or promote with --force --reason "...".'
    )
    assert "champion" not in aliases(service)
    with pytest.raises(PromotionError, match="needs --reason"):
        promote(f"{service}:v3", force=True, reason="  ")
    decision = promote(f"{service}:v3", force=True, reason="hotfix: pricing bug")
    assert decision.forced and aliases(service)["champion"] == 3
    assert history.history(service)[-1]["reason"] == "hotfix: pricing bug"


def test_rollback_goes_back_one_champion_at_a_time_through_the_history(service: str) -> None:
    promote(f"{service}:v1")
    promote(f"{service}:v2", force=True, reason="second")
    promote(f"{service}:v3", force=True, reason="third")
    assert aliases(service) == {"champion": 3, "previous": 2}
    first = rollback(service, reason="bad night")
    assert (first.version, first.previous) == (2, 3)
    assert aliases(service) == {"champion": 2, "previous": 1}  # the champion 2 replaced
    rollback(service)
    assert aliases(service) == {"champion": 1}  # nothing before 1
    with pytest.raises(PromotionError) as refused:
        rollback(service)
    assert str(refused.value) == (
        f"Cannot roll {service} back: it has no `previous` version (nb2prod versions {service})."
    )
    actions = [(e["action"], e["version"]) for e in history.history(service)]
    assert actions == [
        ("promote", 1),
        ("promote", 2),
        ("promote", 3),
        ("rollback", 2),
        ("rollback", 1),
    ]


def test_a_rollback_never_points_champion_at_a_bento_that_left_the_store(
    service: str, tmp_path: Path
) -> None:
    gone = f"{service}:gone00000000"
    register(tmp_path / "gone", service, gone)  # version 4, its bento not in the store
    promote(f"{service}:v1")
    with pytest.raises(RegistryError, match="not in the BentoML store"):
        promote(f"{service}:v4", force=True, reason="x")
    assert aliases(service) == {"champion": 1, "challenger": 3}  # the newest in the store
