"""API keys and per-client rate limits on a served bento: 401s, 429s, revocation, the logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from nb2prod.cli import app
from nb2prod.serving import keys
from tests.support import records, serve


def _add(path: Path, name: str, *extra: str) -> str:
    result = CliRunner().invoke(app, ["keys", "add", name, "--file", str(path), *extra])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_served_bento_needs_a_key_limits_each_client_and_logs_no_key(churn: Any, tmp_path: Path):
    # Given a keys file with three keys, one of them limited to two requests a minute
    path = tmp_path / "keys.json"
    alice, bob = _add(path, "alice"), _add(path, "bob")
    slow = _add(path, "slow", "--rate", "1/min burst=2")
    root = tmp_path / "logs"
    body = {"rows": records(churn.reference().head(3))}
    env = {keys.ENV_FILE: str(path), "NB2PROD_LOG_DIR": str(root)}

    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    with serve(churn.tag, env=env) as base, httpx.Client(base_url=base, timeout=60) as http:
        # Without a key: 401 on every route but health, with one body for all
        refused = [http.post(r, json=body) for r in ("/predict", "/predict_proba", "/explain")]
        refused += [http.post("/metadata", json={}), http.get("/docs.json"), http.get("/metrics")]
        refused.append(http.post("/predict", json=body, headers=auth(alice[:-3] + "abc")))
        assert [r.status_code for r in refused] == [401] * 7
        assert len({r.content for r in refused}) == 1
        assert refused[0].headers["www-authenticate"] == "Bearer"
        assert [http.get(h).status_code for h in ("/healthz", "/readyz", "/livez")] == [200] * 3

        # With a key: the service answers, and its OpenAPI document asks for the bearer key
        assert http.post("/predict", json=body, headers=auth(alice)).status_code == 200
        assert http.post("/predict_proba", json=body, headers=auth(alice)).status_code == 200
        assert http.post("/metadata", json={}, headers=auth(alice)).status_code == 200
        assert "/explain" in http.get("/docs.json", headers=auth(alice)).json()["paths"]
        explained = http.post("/explain", json={"rows": []}, headers=auth(alice))  # no shap run
        assert explained.status_code == 200 and explained.json()["explanations"] == []
        assert http.get("/docs.json", headers=auth(alice)).json()["security"] == [
            {"bearerAuth": []}
        ]

        # Revoked while serving: refused from the next request, no restart
        assert http.post("/predict", json=body, headers=auth(bob)).status_code == 200
        revoked = CliRunner().invoke(app, ["keys", "revoke", "bob", "--file", str(path)])
        assert revoked.exit_code == 0, revoked.output
        answer = http.post("/predict", json=body, headers=auth(bob))
        assert answer.status_code == 401 and answer.content == refused[0].content

        # One client over its rate: 429 at once with Retry-After; another keeps getting 200
        statuses = [
            http.post("/predict", json=body, headers=auth(slow)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        over = http.post("/predict", json=body, headers=auth(slow))
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert over.json()["limit"] == "1/min burst=2"
        assert [
            http.post("/predict", json=body, headers=auth(alice)).status_code for _ in range(5)
        ] == [200] * 5
        port = base.rsplit(":", 1)[1]

    # The prediction log names the client, and no log file holds a key
    deadline = time.monotonic() + 10
    lines: list[dict] = []
    while time.monotonic() < deadline and len(lines) < 10:
        lines = [json.loads(x) for f in root.rglob("*.jsonl") for x in f.read_text().splitlines()]
        time.sleep(0.2)
    assert {x.get("client") for x in lines} == {"alice", "bob", "slow"}
    files = [*root.rglob("*"), Path(os.environ["BENTOML_HOME"]) / f"serve-{port}.log"]
    texts = [f.read_text(errors="replace") for f in files if f.is_file()]
    assert texts and "Service" in texts[-1]  # the serve log was read
    for key in (alice, bob, slow):
        assert not any(key in t or key.split(".")[2] in t for t in texts)
