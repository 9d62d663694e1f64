"""The MLflow model registry as nb2prod uses it: one version per bento, and its aliases.

The store follows MLflow's own rule: ``MLFLOW_TRACKING_URI`` when set, else
``sqlite:///mlflow.db`` in the working directory (:func:`store_uri`); the registry lives in
the same store. Each registered model is named after a service (the notebook's
``nb2prod.name``); each of its versions is one bento, named by the version tag
``bento_tag``, and carries the build's figures as tags, so listing versions needs no run:

- ``bento_tag``, ``build_time``, ``notebook_sha256``, ``nb2prod_version``
- ``nb2prod.metrics`` (JSON ``{name: value}``), ``nb2prod.gates`` (JSON, the manifest's
  ``[{"metric", "value", "bound", "passed"}]``), ``nb2prod.property_gate``
  (``passed`` or ``skipped``)

Aliases (``champion``, ``challenger``, ``previous``) are MLflow's registered-model aliases
(``models:/churn@champion``). Promotions and rollbacks are kept as registered-model tags
``nb2prod.history.000001`` ... holding one JSON event each (:mod:`nb2prod.lifecycle.history`).

Every function raises :class:`~nb2prod.errors.RegistryError` (one sentence); mlflow and
bentoml are imported inside them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.errors import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

BENTO_TAG = "bento_tag"
# An unreachable server costs seconds: MLflow's own client retries for minutes by default.
_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # the build's summary names the run
}
_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|:v?(?P<number>\d+))$")


@dataclass
class Version:
    """One registry version of a service: one bento."""

    name: str
    number: int
    bento_tag: str
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    property_gate: str = ""  # "passed", or "skipped" (--no-gate)
    build_time: str = ""
    status: str = ""  # "ready"; "bento missing" when the bento left the store
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def passed_gates(self) -> bool:
        """Whether every metric gate held and the property tests ran and passed."""
        # a skipped slice (roc_auc of a slice with one class) has passed None: not a failure
        held = all(g.get("passed") is not False for g in self.gates)
        return held and self.property_gate == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_uri() -> str:
    """The tracking and registry store: ``MLFLOW_TRACKING_URI``, else ./mlflow.db (sqlite)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def exists(uri: str | None = None) -> bool:
    """Whether there is a store to ask: a server, or a sqlite file that is there. Looking a
    name up must not create ./mlflow.db."""
    uri = uri or store_uri()
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: next to a sqlite file (``mlartifacts/``),
    never ./mlruns; None lets a tracking server decide (it proxies them)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


@contextmanager
def quiet() -> Iterator[None]:
    """Few HTTP retries, no run URLs on stdout, and MLflow's own log lines kept out unless
    nb2prod logs at DEBUG (``--verbose``): what went wrong is nb2prod's one sentence, and a
    traceback only comes with --verbose. MLflow reads ``MLFLOW_LOGGING_LEVEL`` once, when it
    is first imported; its logger is set here too, for when it was imported before."""
    env = {**_ENV, "MLFLOW_LOGGING_LEVEL": "DEBUG" if _verbose() else "CRITICAL"}
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"])
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def _verbose() -> bool:
    return logging.getLogger("nb2prod").isEnabledFor(logging.DEBUG)


def probe(uri: str) -> None:
    """Raise RegistryError at once when an HTTP store does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=3):
            pass
    except OSError as exc:  # refused, timed out, DNS, an HTTP error status
        reason = getattr(exc, "reason", None) or exc
        raise RegistryError(f"The MLflow store at {uri} does not answer ({reason}).") from exc


def connect(uri: str | None = None, *, create: bool = False) -> MlflowClient:
    """An MLflow client for the store (tracking and registry alike), checked reachable.

    Only a build creates a sqlite store (``create``): MLflow makes the file, with its
    tables, as soon as a client opens it, and a lookup must leave no empty ./mlflow.db.
    """
    uri = uri or store_uri()
    if not create and not exists(uri):
        raise RegistryError(
            f"There is no MLflow store at {uri}: no build was tracked there (a build "
            "registers in the store MLFLOW_TRACKING_URI names, else in ./mlflow.db where it "
            "runs)."
        )
    probe(uri)
    with quiet():
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def sentences(uri: str | None, doing: str) -> Iterator[None]:
    """MLflow's and the network's failures as one RegistryError sentence."""
    with quiet():
        try:
            yield
        except RegistryError:
            raise
        except Exception as exc:  # MlflowException, requests' errors, sqlalchemy's
            text = str(getattr(exc, "message", exc)).strip().splitlines()
            raise RegistryError(
                f"Cannot {doing} in the MLflow store at {uri or store_uri()}: "
                f"{text[0].rstrip('.') if text else type(exc).__name__}."
            ) from exc


def missing(exc: Exception) -> bool:
    """Whether MLflow's ``exc`` says the model or version does not exist."""
    return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def in_store(bento_tag: str) -> bool:
    """Whether the BentoML store holds ``bento_tag``."""
    try:
        import bentoml

        bentoml.get(bento_tag)
        return True
    except Exception:  # noqa: BLE001 - NotFound, or a malformed tag
        return False


def registered_model(client: MlflowClient, name: str, uri: str) -> Any:
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        if missing(exc):
            raise RegistryError(
                f"No model `{name}` in the MLflow registry at {uri} (nb2prod build registers "
                "one per notebook)."
            ) from exc
        raise


def _version(mv: Any, aliases: dict[str, Any], check_store: bool) -> Version:
    tags = dict(mv.tags or {})
    bento = tags.get(BENTO_TAG, "")
    status = "ready" if str(mv.status) in ("READY", "ModelVersionStatus.READY") else str(mv.status)
    if check_store and status == "ready" and not in_store(bento):
        status = "bento missing"
    return Version(
        name=mv.name,
        number=int(mv.version),
        bento_tag=bento,
        aliases=sorted(a for a, v in aliases.items() if int(v) == int(mv.version)),
        metrics=json.loads(tags.get("nb2prod.metrics", "{}")),
        gates=json.loads(tags.get("nb2prod.gates", "[]")),
        property_gate=tags.get("nb2prod.property_gate", ""),
        build_time=tags.get("build_time", ""),
        status=status,
        run_id=mv.run_id,
        tags=tags,
    )


def versions(name: str, *, uri: str | None = None, check_store: bool = True) -> list[Version]:
    """Every registry version of ``name``, oldest first, with its aliases.

    ``check_store`` marks versions whose bento is not in the BentoML store
    (``status == "bento missing"``).

    Raises:
        RegistryError: the store is unreachable, or has no model ``name``.
    """
    uri = uri or store_uri()
    with sentences(uri, f"list the versions of `{name}`"):
        client = connect(uri)
        model = registered_model(client, name, uri)
        found = client.search_model_versions(f"name = '{name}'")
        aliases = dict(model.aliases or {})
        listed = [_version(mv, aliases, check_store) for mv in found]
    return sorted(listed, key=lambda v: v.number)


def get_version(name: str, number: int, *, uri: str | None = None) -> Version:
    """Version ``number`` of ``name``.

    Raises:
        RegistryError: no such model or version, or the store is unreachable.
    """
    uri = uri or store_uri()
    with sentences(uri, f"read version {number} of `{name}`"):
        client = connect(uri)
        model = registered_model(client, name, uri)
        try:
            mv = client.get_model_version(name, str(number))
        except Exception as exc:
            if missing(exc):
                raise RegistryError(
                    f"`{name}` has no version {number} in the MLflow registry at {uri} "
                    f"(nb2prod versions {name})."
                ) from exc
            raise
        return _version(mv, dict(model.aliases or {}), check_store=True)


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """``churn@champion`` -> ("churn", "champion", None); ``churn:v3``/``churn:3`` ->
    ("churn", None, 3).

    Raises:
        RegistryError: ``ref`` is neither form.
    """
    match = _REF.match(ref.strip())
    if not match:
        raise RegistryError(
            f"`{ref}` names no registry version: write NAME@ALIAS (churn@champion) or "
            "NAME:vN (churn:v3)."
        )
    number = match["number"]
    return match["name"], match["alias"], int(number) if number else None


def is_ref(text: str) -> bool:
    """Whether ``text`` reads as a registry reference (``NAME@ALIAS`` or ``NAME:vN``), not
    a BentoML tag or a path: what ``open_bento`` resolves here."""
    return bool(re.match(r"^[A-Za-z0-9_.-]+(@[A-Za-z0-9_-]+|:v\d+)$", str(text)))


def resolve(ref: str, *, uri: str | None = None) -> str:
    """The bento tag ``ref`` names: ``NAME@ALIAS`` (champion, challenger, previous) or a
    registry version ``NAME:vN`` / ``NAME:N``.

    Raises:
        RegistryError: a malformed ref, an unknown name, alias or version, or a bento that
            is not in the BentoML store (an alias never points at one).
    """
    name, alias, number = parse_ref(ref)
    uri = uri or store_uri()
    if alias is None:
        version = get_version(name, number or 0, uri=uri)
    else:
        listed = versions(name, uri=uri)
        found = [v for v in listed if alias in v.aliases]
        if not found:
            held = sorted({a for v in listed for a in v.aliases})
            raise RegistryError(
                f"`{name}` has no alias `{alias}` (its aliases: {', '.join(held) or 'none'}; "
                f"nb2prod versions {name})."
            )
        version = found[0]
    if version.status == "bento missing":
        raise RegistryError(
            f"{ref} is version {version.number}, bento {version.bento_tag}, which is not in the "
            "BentoML store (bentoml list); an alias never points at a bento that is not in the "
            "store."
        )
    return version.bento_tag


def split_version(ref: str, *, uri: str | None = None) -> tuple[str, int]:
    """``churn:v3`` / ``churn:3`` -> ("churn", 3); ``churn@challenger`` -> the alias's number.

    Raises:
        RegistryError: a malformed ref, or an alias that is not set.
    """
    name, alias, number = parse_ref(ref)
    if alias is None:
        return name, number or 0
    found = alias_version(name, alias, uri=uri)
    if found is None:
        raise RegistryError(f"`{name}` has no alias `{alias}` (nb2prod versions {name}).")
    return name, found.number


def alias_version(name: str, alias: str, *, uri: str | None = None) -> Version | None:
    """The version ``name@alias`` points at, or None when the alias is not set.

    Raises:
        RegistryError: no model ``name``, or the store is unreachable.
    """
    return next((v for v in versions(name, uri=uri) if alias in v.aliases), None)


def serve_command(ref: str, args: list[str]) -> list[str]:
    """``bentoml serve <the tag ref resolves to> *args``, with the venv's own bentoml.

    Raises:
        RegistryError: ``ref`` does not resolve (:func:`resolve`).
    """
    import sys

    found = Path(sys.executable).parent / "bentoml"
    return [str(found) if found.exists() else "bentoml", "serve", resolve(ref), *args]


def set_alias(name: str, alias: str, number: int, *, uri: str | None = None) -> Version:
    """Point ``name@alias`` at version ``number`` (moving it from where it was).

    Raises:
        RegistryError: no such version, its bento is not in the BentoML store, or MLflow
            refuses the alias (``latest`` and ``vN`` are reserved).
    """
    uri = uri or store_uri()
    version = get_version(name, number, uri=uri)
    if version.status == "bento missing":
        raise RegistryError(
            f"Cannot point {name}@{alias} at version {number}: its bento {version.bento_tag} is "
            "not in the BentoML store, and an alias never points at a bento that is not in the "
            "store."
        )
    with sentences(uri, f"set {name}@{alias}"):
        connect(uri).set_registered_model_alias(name, alias, str(number))
    return get_version(name, number, uri=uri)


def remove_alias(name: str, alias: str, *, uri: str | None = None) -> None:
    """Remove ``name@alias``; nothing happens when it is not set.

    Raises:
        RegistryError: no model ``name``, or the store is unreachable.
    """
    uri = uri or store_uri()
    with sentences(uri, f"remove {name}@{alias}"):
        client = connect(uri)
        if alias in (registered_model(client, name, uri).aliases or {}):
            client.delete_registered_model_alias(name, alias)


def tag_version(name: str, number: int, key: str, value: str, *, uri: str | None = None) -> None:
    """Set tag ``key`` on version ``number`` (e.g. ``nb2prod.forced_reason``).

    Raises:
        RegistryError: no such version, or the store is unreachable.
    """
    uri = uri or store_uri()
    with sentences(uri, f"tag version {number} of `{name}`"):
        connect(uri).set_model_version_tag(name, str(number), key, value)
