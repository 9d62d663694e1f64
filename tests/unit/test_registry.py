"""The registry in a real sqlite store: versions, aliases, resolve, history, and the CLI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nb2prod.bento.locate import open_bento
from nb2prod.cli import app
from nb2prod.errors import BentoNotFound, RegistryError
from nb2prod.lifecycle import history, registry
from tests.support import GATES, register, tiny_bento


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real bento in the session's BentoML store (a one-endpoint service, ~1 s to build)."""
    return tiny_bento(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def service(store: str, bento: str, tmp_path: Path) -> str:
    """A service with version 1 = the real bento, version 2 = a bento not in the store."""
    name = f"svc{uuid.uuid4().hex[:6]}"
    assert register(tmp_path, name, bento) == 1
    assert register(tmp_path, name, f"{name}:gone00000000", roc_auc=0.9) == 2
    return name


def test_versions_list_aliases_metrics_gates_bento_and_whether_it_is_in_the_store(
    service: str, bento: str
) -> None:
    # the newest build whose bento is in the store is the challenger (never one that is not)
    assert registry.alias_version(service, "challenger").number == 1
    registry.set_alias(service, "champion", 1)
    first, second = registry.versions(service)
    assert (first.number, first.bento_tag, first.aliases, first.status) == (
        1,
        bento,
        ["challenger", "champion"],
        "ready",
    )
    assert first.metrics == {"roc_auc": 0.83} and first.gates == GATES
    assert (second.number, second.aliases, second.status) == (2, [], "bento missing")
    assert registry.get_version(service, 2).metrics == {"roc_auc": 0.9}


def test_resolve_reads_alias_and_version_forms(service: str, bento: str) -> None:
    registry.set_alias(service, "challenger", 1)
    assert registry.resolve(f"{service}@challenger") == bento
    assert registry.resolve(f"{service}:v1") == bento
    assert registry.resolve(f"{service}:1") == bento
    assert registry.split_version(f"{service}@challenger") == (service, 1)
    assert registry.alias_version(service, "champion") is None


def test_resolve_refuses_in_one_sentence(service: str, store: str) -> None:
    cases = {
        "nosuchservice@champion": f"No model `nosuchservice` in the MLflow registry at {store}",
        f"{service}@champion": f"`{service}` has no alias `champion` (its aliases: challenger;",
        f"{service}:v9": f"`{service}` has no version 9 in the MLflow registry",
        f"{service}:v2": "which is not in the BentoML store (bentoml list); an alias never "
        "points at a bento that is not in the store.",
        "churn latest": "`churn latest` names no registry version: write NAME@ALIAS",
    }
    for ref, words in cases.items():
        with pytest.raises(RegistryError) as raised:
            registry.resolve(ref)
        assert words in str(raised.value), ref
        assert str(raised.value).count(". ") == 0, str(raised.value)  # one sentence


def test_an_alias_never_points_at_a_bento_that_is_not_in_the_store(service: str) -> None:
    with pytest.raises(RegistryError, match="an alias never points at a bento that is not in"):
        registry.set_alias(service, "champion", 2)
    assert registry.alias_version(service, "champion") is None


def test_aliases_move_and_go(service: str) -> None:
    registry.set_alias(service, "champion", 1)
    registry.set_alias(service, "previous", 1)
    registry.remove_alias(service, "champion")
    registry.remove_alias(service, "champion")  # not set: nothing happens
    # version 1 is the challenger since it was built (the newest bento in the store)
    assert [v.aliases for v in registry.versions(service)] == [["challenger", "previous"], []]
    with pytest.raises(RegistryError, match="reserved"):
        registry.set_alias(service, "v1", 1)


def test_history_keeps_events_in_order_with_time_and_user(service: str) -> None:
    assert history.history(service) == []
    first = history.record_event(service, {"action": "promote", "version": 1, "reason": "r"})
    history.record_event(service, {"action": "rollback", "version": 1, "figures": {"x": 0.5}})
    events = history.history(service)
    assert [e["action"] for e in events] == ["promote", "rollback"]
    assert events[0] == first and first["time"].endswith("+00:00") and first["user"]
    assert events[1]["figures"] == {"x": 0.5}
    tags = registry.connect().get_registered_model(service).tags
    assert sorted(k for k in tags if k.startswith("nb2prod.history.")) == [
        "nb2prod.history.000001",
        "nb2prod.history.000002",
    ]
    registry.tag_version(service, 1, "nb2prod.forced_reason", "hotfix")
    assert registry.get_version(service, 1).tags["nb2prod.forced_reason"] == "hotfix"


def test_open_bento_resolves_an_alias_through_the_registry(service: str, bento: str) -> None:
    registry.set_alias(service, "champion", 1)
    # the tiny bento is in the store but not made by nb2prod: the error names the resolved tag
    not_ours = pytest.raises(BentoNotFound, match=f"Bento {bento} was not made by nb2prod")
    with not_ours, open_bento(f"{service}@champion"):
        pass
    with (  # a bento that is not there: exit 2, as for any other name
        pytest.raises(BentoNotFound, match="has no alias `previous`"),
        open_bento(f"{service}@previous"),
    ):
        pass


def test_an_unreachable_store_is_one_sentence_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError, match=f"^The MLflow store at {uri} does not answer"):
        registry.versions("churn", uri=uri)


def test_cli_versions_resolve_and_serve(service: str, bento: str) -> None:
    registry.set_alias(service, "champion", 1)
    history.record_event(service, {"action": "promote", "version": 1, "reason": "first"})
    runner = CliRunner()
    done = runner.invoke(app, ["resolve", f"{service}@champion"])
    assert (done.exit_code, done.stdout) == (0, f"{bento}\n")
    done = runner.invoke(app, ["versions", service, "--json"])
    listed = json.loads(done.stdout)
    assert [v["bento_tag"] for v in listed["versions"]] == [bento, f"{service}:gone00000000"]
    assert listed["versions"][0]["aliases"] == ["challenger", "champion"]
    assert [e["reason"] for e in listed["history"]] == ["first"]
    done = runner.invoke(app, ["versions", service], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    for words in (bento, "champion", "roc_auc 0.83", "bento missing", "promote version 1: first"):
        assert words in done.stdout, words
    done = runner.invoke(app, ["serve", f"{service}@previous", "--port", "3999"])
    assert done.exit_code == 1 and f"`{service}` has no alias `previous`" in done.stderr
    command = registry.serve_command(f"{service}@champion", ["--port", "3999"])
    assert command[1:] == ["serve", bento, "--port", "3999"] and Path(command[0]).name == "bentoml"
