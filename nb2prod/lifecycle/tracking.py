"""Each ``nb2prod build`` and ``nb2prod train`` as one MLflow run; a good build registered.

The run is recorded when the build ends, whole, with the build's own start and end times,
in the experiment named after the service (``nb2prod.name``), in the store
:func:`nb2prod.lifecycle.registry.store_uri` names. A run holds:

- params: the notebook parameters as the kernel saw them (the manifest's ``parameters``);
- metrics: the notebook's metrics, and ``gate.<metric>.value`` for each metric gate;
- tags: ``gate.<metric>`` (``passed >= 0.7`` / ``failed >= 0.7``), ``nb2prod.property_gate``
  (``passed``, or ``skipped`` with --no-gate), ``notebook_sha256``, ``git_commit``,
  ``bento_tag``, ``nb2prod_version``, ``nb2prod.kind`` (build, train);
- artifacts: ``notebook/executed.ipynb``, ``nb2prod.json`` and ``tests/`` (the generated
  tests).

A failed build is a FAILED run with the tag ``nb2prod.error`` (its one sentence) and the
failed notebook (``notebook/<name>.failed.ipynb``) when the build kept one.

A cache hit trains nothing, so it records no new run when the registry already has a
version of its bento: the result names the run and version that made it (``cached``).
A cache hit whose bento has no version in this store (a build before tracking, or another
store) is recorded as a run tagged ``nb2prod.cached`` and registered.

A registered build becomes the ``challenger`` (unless it is the champion already), so the
continuous-training loop promotes ``NAME@challenger`` (``scripts/continuous_training.sh``).

Tracking never fails a build: when the store cannot be reached or refuses a write, the
build's result says so in one sentence (``tracking_off``), logged once as a warning.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nb2prod._version import __version__
from nb2prod.errors import BuildInProgress, Nb2ProdError, RegistryError
from nb2prod.lifecycle import registry

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from nb2prod.builder.pipeline import BuildResult
    from nb2prod.builder.training import TrainingResult

log = logging.getLogger(__name__)
T = TypeVar("T")
_TAG_MAX = 5000  # the shortest tag value limit MLflow stores have (model version tags)


def track_build(
    notebook: str | Path,
    params: dict[str, Any],
    out_dir: Path,
    call: Callable[[], BuildResult],
) -> BuildResult:
    """Run ``call`` (the build) and record it as one MLflow run, registered when it succeeds.

    Sets ``result.tracking`` (``run_id``, ``uri``, ``experiment``, ``version``, ``cached``)
    or ``result.tracking_off`` (why nothing was recorded). A build's own error is raised
    unchanged, after its FAILED run is recorded.
    """
    start = _now()
    try:
        result = call()
    except Nb2ProdError as exc:
        kept = out_dir / f"{_name(notebook) or 'unknown'}.failed.ipynb"
        _failed(notebook, params, exc, start, "build", kept)
        raise
    uri = registry.store_uri()
    try:
        with registry.quiet():
            result.tracking = _succeeded(registry.connect(uri, create=True), uri, result, start)
    except Exception as exc:  # noqa: BLE001 - tracking never fails a build
        result.tracking_off = _off("build", uri, exc)
    return result


def track_train(
    notebook: str | Path, params: dict[str, Any], call: Callable[[], TrainingResult]
) -> TrainingResult:
    """Run ``call`` (``nb2prod train``) and record it as one MLflow run (never registered)."""
    start = _now()
    try:
        training = call()
    except Nb2ProdError as exc:
        _failed(notebook, params, exc, start, "train", None)
        raise
    uri = registry.store_uri()
    try:
        with registry.quiet():
            client = registry.connect(uri, create=True)
            name = _name(notebook) or Path(notebook).stem
            run_id = _open_run(client, uri, name, start, {"nb2prod.kind": "train"})
            _log(client, run_id, training.params, training.metrics, {})
            if training.executed.is_file():
                client.log_artifact(run_id, str(training.executed), "notebook")
            client.set_terminated(run_id, "FINISHED", end_time=_now())
        log.info("training tracked as MLflow run %s in %s (experiment %s)", run_id, uri, name)
    except Exception as exc:  # noqa: BLE001 - nor a training run
        _off("training run", uri, exc)
    return training


def _succeeded(client: MlflowClient, uri: str, result: BuildResult, start: int) -> dict[str, Any]:
    src = result.build_dir / "src"
    manifest = json.loads((src / "nb2prod.json").read_text(encoding="utf-8"))
    name = manifest["name"]
    found = {"uri": uri, "experiment": name, "cached": False}
    if result.cached:
        made = _registered(client, name, result.tag)
        if made is not None:  # the run that built this bento is the record
            return {**found, "run_id": made.run_id, "version": int(made.version), "cached": True}
    gate = "passed" if manifest.get("properties", {}).get("gate", True) else "skipped"
    tags = {
        "nb2prod.kind": "build",
        "bento_tag": result.tag,
        "notebook": str(manifest.get("notebook", "")),
        "notebook_sha256": str(manifest.get("notebook_sha256", "")),
        "git_commit": str(manifest.get("git_commit") or ""),
        "nb2prod_version": str(manifest.get("nb2prod_version", __version__)),
        "nb2prod.property_gate": gate,
        "mlflow.note.content": f"nb2prod build of {manifest.get('notebook')}: {result.tag}",
    }
    if result.cached:
        tags["nb2prod.cached"] = "true"
    run_id = _open_run(client, uri, name, start, tags)
    _log(client, run_id, manifest.get("parameters") or {}, result.metrics, _gates(result.gates))
    executed = result.build_dir / "train" / "executed.ipynb"
    if executed.is_file():
        client.log_artifact(run_id, str(executed), "notebook")
    client.log_artifact(run_id, str(src / "nb2prod.json"))
    if (src / "tests").is_dir():
        client.log_artifacts(run_id, str(src / "tests"), "tests")
    run = client.get_run(run_id)
    version = _register(
        client,
        name,
        run_id,
        run.info.artifact_uri,
        {
            registry.BENTO_TAG: result.tag,
            "build_time": str(manifest.get("build_time", "")),
            "notebook_sha256": tags["notebook_sha256"],
            "nb2prod_version": tags["nb2prod_version"],
            "nb2prod.metrics": json.dumps(result.metrics)[:_TAG_MAX],
            "nb2prod.gates": json.dumps(result.gates, default=str)[:_TAG_MAX],
            "nb2prod.property_gate": gate,
        },
    )
    client.set_tag(run_id, "nb2prod.registry_version", str(version))
    _make_challenger(client, name, version)
    client.set_terminated(run_id, "FINISHED", end_time=_now())
    log.info("build tracked as MLflow run %s, %s version %s, in %s", run_id, name, version, uri)
    return {**found, "run_id": run_id, "version": version}


def _make_challenger(client: MlflowClient, name: str, version: int) -> None:
    """The newest build is the ``challenger``, unless it is the champion already.

    ``nb2prod promote NAME@challenger`` then takes it; promoting removes the alias.
    """
    aliases = client.get_registered_model(name).aliases or {}
    bento = client.get_model_version(name, str(version)).tags.get(registry.BENTO_TAG, "")
    if str(aliases.get("champion")) != str(version) and registry.in_store(bento):
        client.set_registered_model_alias(name, "challenger", str(version))


def _failed(
    notebook: str | Path,
    params: dict[str, Any],
    exc: Nb2ProdError,
    start: int,
    kind: str,
    kept: Path | None,
) -> None:
    """A FAILED run carrying the error's sentence and the failed notebook; best effort."""
    name = _name(notebook)
    if name is None or isinstance(exc, BuildInProgress):  # no experiment, or not a build
        return
    uri = registry.store_uri()
    try:
        with registry.quiet():
            client = registry.connect(uri, create=True)
            tags = {
                "nb2prod.kind": kind,
                "nb2prod.error": str(exc)[:_TAG_MAX],
                "nb2prod.error_class": type(exc).__name__,
                "notebook": Path(notebook).name,
                "nb2prod_version": __version__,
            }
            gates = {}
            metric = exc.fields.get("metric")
            if "value" in exc.fields and metric:  # GateFailed: the gate that did not hold
                gates[str(metric)] = (exc.fields["value"], str(exc.fields.get("bound", "")), False)
            run_id = _open_run(client, uri, name, start, tags)
            _log(client, run_id, {k: repr(v) for k, v in params.items()}, {}, gates)
            executed = exc.fields.get("executed")
            for candidate in (kept, Path(executed) if executed else None):
                if candidate is not None and candidate.is_file():
                    client.log_artifact(run_id, str(candidate), "notebook")
                    break
            client.set_terminated(run_id, "FAILED", end_time=_now())
        log.info("failed %s tracked as MLflow run %s in %s", kind, run_id, uri)
    except Exception as tracking_exc:  # noqa: BLE001 - the build error stands
        _off(f"failed {kind}", uri, tracking_exc)


def _open_run(client: MlflowClient, uri: str, name: str, start: int, tags: dict[str, str]) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = registry.artifact_root(uri)
        experiment_id = client.create_experiment(
            name,
            artifact_location=f"{root}/{name}" if root else None,
            # the MLflow UI then opens it on its runs, not on the GenAI overview
            tags={"mlflow.experimentKind": "custom_model_development"},
        )
    else:
        experiment_id = experiment.experiment_id
    run_name = f"{tags['nb2prod.kind']} {tags.get('bento_tag', '')}".strip()
    return client.create_run(
        experiment_id, start_time=start, tags=tags, run_name=run_name
    ).info.run_id


def _gates(gates: list[dict[str, Any]]) -> dict[str, tuple[float, str, bool | None]]:
    """Each gate by name; a slice gate's slices apart (``roc_auc[contract].two-year``)."""
    found = {}
    for g in gates:
        key = str(g["metric"])
        if g.get("slice") is not None:
            key += f".{g['slice']}"
        found[key] = (g.get("value"), str(g.get("bound", "")), g.get("passed"))
    return found


def _log(
    client: MlflowClient,
    run_id: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    gates: dict[str, tuple[float, str, bool | None]],
) -> None:
    """Params, metrics and gates in batches (MLflow takes 100 params per call)."""
    from mlflow.entities import Metric, Param, RunTag

    stamp = _now()
    values = {_key(k): float(v) for k, v in metrics.items() if _number(v)}
    tags = []
    for metric, (value, bound, passed) in gates.items():
        if _number(value):
            values[f"gate.{_key(metric)}.value"] = float(value)
        verdict = {True: "passed", False: "failed"}.get(passed, "skipped")
        tags.append(RunTag(f"gate.{_key(metric)}", f"{verdict} {bound}"))
    batch = [Metric(k, v, stamp, 0) for k, v in values.items()]
    items = [Param(_key(k), str(v)[:6000]) for k, v in params.items()]
    for i in range(0, max(len(items), 1), 100):
        client.log_batch(run_id, metrics=batch if i == 0 else [], params=items[i : i + 100])
    if tags:
        client.log_batch(run_id, tags=tags)


def _key(name: str) -> str:
    """A metric or parameter name MLflow accepts (letters, digits, _ - . space / only)."""
    return re.sub(r"[^\w\-. /]", "_", str(name))[:250] or "_"


def _number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _name(notebook: str | Path) -> str | None:
    """The service name (``nb2prod.name``), or None when the notebook cannot be read."""
    try:
        from nb2prod.notebook.read import read

        return read(Path(notebook)).settings.name
    except Exception:  # a failed build of an unreadable notebook: nothing to name
        log.debug("no service name for %s", notebook, exc_info=True)
        return None


def _off(what: str, uri: str, exc: Exception) -> str:
    """The one warning sentence: what was not recorded, and why."""
    if isinstance(exc, RegistryError):
        why = str(exc).rstrip(".")
    else:
        text = str(getattr(exc, "message", exc)).strip().splitlines()
        why = f"the MLflow store at {uri} refused it ({text[0] if text else type(exc).__name__})"
    sentence = f"This {what} was not tracked: {why[:1].lower()}{why[1:]}."
    log.warning("%s", sentence)
    log.debug("tracking failed", exc_info=exc)
    return sentence


def _now() -> int:
    return int(time.time() * 1000)


def _register(
    client: MlflowClient, name: str, run_id: str, source: str, tags: dict[str, str]
) -> int:
    """Register the bento ``tags["bento_tag"]`` as a version of ``name``; its number.

    The registered model is created when missing. A bento already registered keeps its
    version: one version per bento, never two.
    """
    try:
        client.get_registered_model(name)
    except Exception as exc:
        if not registry.missing(exc):
            raise
        client.create_registered_model(name, description=f"nb2prod service {name}: one bento each")
    made = _registered(client, name, tags[registry.BENTO_TAG])
    if made is not None:
        return int(made.version)
    return int(client.create_model_version(name, source, run_id=run_id, tags=tags).version)


def _registered(client: MlflowClient, name: str, bento_tag: str) -> Any | None:
    """The (first) version registered for ``bento_tag``, or None."""
    try:
        found = client.search_model_versions(
            f"name = '{name}' and tags.{registry.BENTO_TAG} = '{bento_tag}'"
        )
    except Exception as exc:
        if registry.missing(exc):
            return None
        raise
    return min(found, key=lambda mv: int(mv.version)) if found else None
