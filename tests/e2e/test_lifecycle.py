"""The life after the first bento, as a user runs it: the `nb2prod` commands in a folder of
their own, against the default store (``./mlflow.db``, no ``MLFLOW_TRACKING_URI``).

One module-scoped story, in the order a team lives it: two variants built and registered,
the first promoted and served with its prediction log on, the second promoted past the
shadow check on that logged traffic, a rollback, the rolled-back champion served by alias
(on an ``mlflow server`` store, the same registry steps with the aliases resolved). Then a
worse challenger is refused with its figures, and the continuous-training script runs its
whole loop on drifted traffic and drifted labelled data.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    BIN,
    NOTEBOOKS,
    ROOT,
    WEAK_CHURN,
    Built,
    background,
    churn_rows,
    free_port,
    mlflow_server,
    records,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
CHURN = str(NOTEBOOKS / "churn.ipynb")
# the world after the champion was trained: fewer long-tenure customers, more one-year
# contracts, twice the support calls, and calls that now mean a customer is looked after
DRIFT = {
    "tenure_shift": -20,
    "contract_p": (0.3, 0.4, 0.3),
    "calls_rate": 3.0,
    "calls_effect": -0.6,
}


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user who never set MLFLOW_TRACKING_URI: ./mlflow.db it is."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "COLUMNS": "250", "NB2PROD_USER": "dana", **extra}


def nb2prod(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "nb2prod"), *args],
        cwd=work,
        env=user_env(**env),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@contextmanager
def served(work: Path, ref: str, logs: Path, **env: str) -> Iterator[str]:
    """``nb2prod serve REF`` on a free loopback port, its prediction log in ``logs``."""
    port = free_port()
    command = [str(BIN / "nb2prod"), "serve", ref, "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    log = work / f"serve-{port}.log"
    with background(
        command, f"{base}/readyz", log, user_env(NB2PROD_LOG_DIR=str(logs), **env), cwd=work
    ):
        yield base


def send(base: str, rows: Any, batch: int = 20) -> list[Any]:
    answers = []
    for start in range(0, len(rows), batch):
        body = {"rows": records(rows.iloc[start : start + batch])}
        reply = httpx.post(f"{base}/predict", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    return answers


def versions(work: Path, **env: str) -> dict[str, Any]:
    return json.loads(ok(nb2prod(work, "versions", "churn", "--json", **env)))


def aliases(uri: str) -> dict[str, int]:
    """The aliases, read in-process (the CLI's own listing is checked where it matters)."""
    from nb2prod.lifecycle import registry

    return {a: v.number for v in registry.versions("churn", uri=uri) for a in v.aliases}


def build_two(work: Path, churn: Built, **env: str) -> tuple[str, str]:
    """Version 1 is the session's build (its cache answers), version 2 the notebook with 120
    trees (built for real once; a cache hit after that)."""
    out = str(churn.result.bento_path.parent)
    first = ok(nb2prod(work, "build", CHURN, "--out", out, **env))
    second = ok(nb2prod(work, "build", CHURN, "-p", "n_estimators", "120", "--out", out, **env))
    return first, second


@pytest.fixture(scope="module")
def team(churn: Built, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A team's folder, with the default store, and the two variants registered there."""
    work = tmp_path_factory.mktemp("team")
    first, second = build_two(work, churn)
    return {"work": work, "first": first, "second": second, "churn": churn}


def story(work: Path, churn: Built, uri: str, *, serve: bool, **env: str) -> None:
    """Promote the first, shadow the second on the first's logged traffic, promote it, roll
    back, and serve the champion by alias; the registry keeps the whole history.

    ``serve``: serve by alias, and promote with ``--traffic`` (the shadow check on the
    logged traffic, which ``nb2prod shadow`` runs alone: tests/e2e/test_shadow.py); else the
    same registry steps with the aliases resolved, not served (the store is what differs)."""
    # Given two builds, each a tracked run with its artifacts and a registry version
    listed = versions(work, **env)["versions"]
    assert [v["number"] for v in listed] == [1, 2] and listed[0]["bento_tag"] == churn.tag
    assert listed[1]["aliases"] == ["challenger"]  # the newest build
    from nb2prod.lifecycle import registry

    client = registry.connect(uri)
    for version in listed:
        run = client.get_run(version["run_id"])
        assert run.info.status == "FINISHED" and run.data.metrics["roc_auc"] > 0.7
        assert {"notebook", "nb2prod.json", "tests"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)
        }

    # When the first is promoted and serves traffic with its prediction log on
    assert "churn@champion is version 1" in ok(nb2prod(work, "promote", "churn:v1", **env))
    assert ok(nb2prod(work, "resolve", "churn@champion", **env)).strip() == churn.tag
    traffic: tuple[str, ...] = ()
    if serve:
        logs = work / "logs"
        with served(work, "churn@champion", logs, **env) as base:
            answers = send(base, churn_rows(300, 41).drop(columns="churned"))
        assert {a["model_version"] for a in answers} == {churn.tag.split(":")[1]}
        traffic = ("--traffic", str(logs))

    # Then the challenger is promoted on its figures: its own gates, the champion's score on
    # its evaluation data within the notebook's margin, and the shadow check on that logged
    # traffic (agreement, prediction shift, rejects)
    promoted = ok(nb2prod(work, "promote", "churn@challenger", *traffic, **env))
    assert "churn@champion is version 2 (was 1)" in promoted
    assert aliases(uri) == {"champion": 2, "previous": 1}

    # And one command rolls it back
    rolled = ok(nb2prod(work, "rollback", "churn", "--reason", "on-call: complaints", **env))
    assert "churn@champion is version 1 (was 2)" in rolled
    assert aliases(uri) == {"champion": 1}

    # And `nb2prod versions` shows the whole history, with who, why and the figures
    events = versions(work, **env)["history"]
    assert [(e["action"], e["version"], e["previous"]) for e in events] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("rollback", 1, 2),
    ]
    assert {e["user"] for e in events} == {"dana"} and events[2]["reason"] == "on-call: complaints"
    decided = events[1]["figures"]
    assert decided["comparison"]["metric"] == "roc_auc"
    assert decided["comparison"]["min_delta"] == 0.01
    if serve:
        checks = {c["name"]: c for c in decided["shadow"]["checks"]}
        assert decided["shadow"]["rows"] == 300 and all(c["passed"] for c in checks.values())
        assert checks["agreement"]["value"] >= 0.95
    table = ok(nb2prod(work, "versions", "churn", **env))
    assert "rollback version 1 (was 2): on-call: complaints" in table

    # And `nb2prod serve churn@champion` serves the rolled-back version
    assert ok(nb2prod(work, "resolve", "churn@champion", **env)).strip() == churn.tag
    if serve:
        with served(work, "churn@champion", work / "logs-after", **env) as base:
            answers = send(base, churn_rows(20, 42).drop(columns="churned"))
        assert {a["model_version"] for a in answers} == {churn.tag.split(":")[1]}


def test_the_whole_path_in_the_default_sqlite_store(team: dict) -> None:
    work = team["work"]
    assert (work / "mlflow.db").is_file() and not (work / "mlruns").exists()
    assert "churn version 1, in sqlite:///" in team["first"]
    assert "churn version 2, in sqlite:///" in team["second"]
    story(work, team["churn"], f"sqlite:///{work / 'mlflow.db'}", serve=True)


def test_the_whole_path_on_an_mlflow_server(churn: Built, tmp_path: Path) -> None:
    with mlflow_server(tmp_path / "server") as uri:
        first, second = build_two(tmp_path, churn, MLFLOW_TRACKING_URI=uri)
        assert f"churn version 1, in {uri}" in first and f"churn version 2, in {uri}" in second
        assert not (tmp_path / "mlflow.db").exists()
        story(tmp_path, churn, uri, serve=False, MLFLOW_TRACKING_URI=uri)


def test_a_challenger_worse_than_the_champion_by_more_than_the_margin_is_refused(
    team: dict,
) -> None:
    work = team["work"]
    from nb2prod.lifecycle import registry

    uri = f"sqlite:///{work / 'mlflow.db'}"
    registry.set_alias("churn", "champion", 1, uri=uri)
    # Given a challenger with one tree, which still passes its own roc_auc gate
    out = str(team["churn"].result.bento_path.parent)
    weak = [arg for name, value in WEAK_CHURN.items() for arg in ("-p", name, str(value))]
    ok(nb2prod(work, "build", CHURN, *weak, "--out", out))
    # When it is promoted, it is refused, naming the metric, both values and the margin
    refused = nb2prod(work, "promote", "churn@challenger")
    assert refused.returncode == 1 and refused.stdout == ""
    sentence = " ".join(refused.stderr.split())
    assert "is worse than champion version 1 on roc_auc (" in sentence
    assert "by more than the margin min_delta = 0.01" in sentence
    assert sentence.count(" against ") == 1 and "Traceback" not in refused.stderr
    assert aliases(uri)["champion"] == 1
    # And --force needs a reason, which is then recorded
    forced = nb2prod(work, "promote", "churn@challenger", "--force")
    assert forced.returncode == 1 and "needs --reason" in forced.stderr
    ok(nb2prod(work, "promote", "churn@challenger", "--force", "--reason", "demo for sales"))
    assert versions(work)["history"][-1]["forced"] is True
    ok(nb2prod(work, "rollback", "churn"))
    assert aliases(uri)["champion"] == 1


def test_the_continuous_training_loop_promotes_a_retrained_challenger_on_drift(
    team: dict,
) -> None:
    work, churn = team["work"], team["churn"]
    from nb2prod.lifecycle import registry

    uri = f"sqlite:///{work / 'mlflow.db'}"
    registry.set_alias("churn", "champion", 1, uri=uri)
    # Given a week of drifted traffic (a table of rows: the script takes the service's logs
    # too, as the story above shows for shadow), its outcomes, and new labelled data
    traffic = churn_rows(600, 51, **DRIFT)
    logs = work / "week.parquet"
    traffic.drop(columns="churned").to_parquet(logs)
    traffic[["churned"]].to_csv(work / "outcomes.csv", index=False)
    churn_rows(4000, 52, **DRIFT).to_csv(work / "new.csv", index=False)
    before = len(versions(work)["versions"])
    # When the nightly script runs
    script = ROOT / "scripts" / "continuous_training.sh"
    args = [CHURN, str(logs), str(work / "new.csv"), str(work / "outcomes.csv")]
    done = subprocess.run(
        ["bash", str(script), *args],
        cwd=work,
        env=user_env(PATH=f"{BIN}:{os.environ['PATH']}", REPORTS=str(work / "reports")),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # Then it saw the drift, built a challenger on the new data, shadowed and promoted it
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "drift; building a challenger" in done.stdout and "promoted" in done.stdout
    listed = versions(work)
    assert len(listed["versions"]) == before + 1
    new = listed["versions"][-1]
    assert aliases(uri) == {"champion": new["number"], "previous": 1}
    assert json.loads(new["tags"]["nb2prod.metrics"])["roc_auc"] > 0.7
    (monitored,) = (work / "reports").glob("monitor-*.json")
    assert json.loads(monitored.read_text())["drift"] is True
    (shadowed,) = (work / "reports").glob("shadow-*.json")
    report = json.loads(shadowed.read_text())
    assert report["passed"] and report["metrics"]["rows"] == 600
    assert report["metrics"]["challenger"]["roc_auc"] > report["metrics"]["champion"]["roc_auc"]
    assert listed["history"][-1]["action"] == "promote"
    assert listed["history"][-1]["figures"]["comparison"]["delta"] > 0
    # And the new champion's bento is the one the store holds
    assert registry.in_store(new["bento_tag"]) and new["bento_tag"] != churn.tag
