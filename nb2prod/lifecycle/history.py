"""A service's history: every promotion and rollback, with time, user, reason and figures.

Kept in the registry itself, as registered-model tags ``nb2prod.history.<6 digits>`` (one
JSON event each), so ``nb2prod versions`` and the MLflow UI show the same record. Two
writers at the same instant could pick the same number; promotions are made by people, one
command at a time.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime, timezone
from typing import Any

from nb2prod.errors import RegistryError
from nb2prod.lifecycle.registry import connect, registered_model, sentences, store_uri

HISTORY = "nb2prod.history."


def record_event(name: str, event: dict[str, Any], *, uri: str | None = None) -> dict[str, Any]:
    """Append a promotion or rollback to ``name``'s history; the event as stored.

    ``event`` holds e.g. ``action`` ("promote", "rollback"), ``version``, ``reason`` and
    ``figures`` (what decided it); ``time`` (UTC, ISO 8601) and ``user`` are filled in
    when missing. Stored as the registered-model tag ``nb2prod.history.<6 digits>``.

    Raises:
        RegistryError: no model ``name``, the event is not JSON, or the store is unreachable.
    """
    uri = uri or store_uri()
    stored = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "user": user(),
        **event,
    }
    try:
        text = json.dumps(stored, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"The history event for `{name}` is not JSON ({exc}).") from exc
    with sentences(uri, f"record a history event of `{name}`"):
        client = connect(uri)
        tags = registered_model(client, name, uri).tags or {}
        numbers = [int(k.removeprefix(HISTORY)) for k in tags if k.startswith(HISTORY)]
        client.set_registered_model_tag(name, f"{HISTORY}{max(numbers, default=0) + 1:06d}", text)
    return stored


def history(name: str, *, uri: str | None = None) -> list[dict[str, Any]]:
    """``name``'s promotions and rollbacks, oldest first (:func:`record_event`).

    Raises:
        RegistryError: no model ``name``, or the store is unreachable.
    """
    uri = uri or store_uri()
    with sentences(uri, f"read the history of `{name}`"):
        tags = registered_model(connect(uri), name, uri).tags or {}
    events = sorted((k, v) for k, v in tags.items() if k.startswith(HISTORY))
    return [json.loads(v) for _, v in events]


def user() -> str:
    """Who moved the alias: ``NB2PROD_USER`` (a CI job names itself), else the login name."""
    try:
        return os.environ.get("NB2PROD_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in a container
        return os.environ.get("USER", "unknown")
