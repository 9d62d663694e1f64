"""``nb2prod build``: check, train, lift, test, bento; one recipe, side effects at the ends."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2prod.bento import store
from nb2prod.builder import cache, evaluation, identity, lifetime, reads
from nb2prod.builder.codegen import write
from nb2prod.builder.compile import decide as decide_runtime
from nb2prod.builder.lift import lift, manifest_file
from nb2prod.builder.training import run as run_training
from nb2prod.errors import BentoError
from nb2prod.gate.run import failure, run_tests
from nb2prod.lifecycle.tracking import track_build
from nb2prod.monitoring import attach
from nb2prod.notebook.check import check, check_params
from nb2prod.notebook.gates import check_gates

if TYPE_CHECKING:
    from nb2prod.builder.lift import Lifted
    from nb2prod.builder.reads import Inputs
    from nb2prod.builder.training import TrainingResult
    from nb2prod.notebook.analysis import CheckResult

log = logging.getLogger(__name__)
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Stage:
    """One stage of a build: its name, its label in the panel, and what it does in words."""

    name: str
    label: str
    doing: str


# The one list of stages: the CLI's progress, the build jobs and the JupyterLab panel show it.
STAGES = (
    Stage("check", "check", "static checks"),
    Stage("train", "train", "training with papermill"),
    Stage("lift", "lift", "lifting cells and generating code"),
    Stage("test", "property tests", "running generated tests"),
    Stage("bento", "bento", "building and exporting the bento"),
)


@dataclass
class BuildResult:
    """What a finished build made, and where."""

    tag: str
    version: str
    metrics: dict[str, float]
    bento_path: Path
    build_dir: Path
    gates: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False
    cache_off: str | None = None  # why no later build of this notebook is a cache hit
    serving: dict[str, Any] | None = None  # the manifest's: runtime, reason, parity
    tracking: dict[str, Any] | None = None  # the MLflow run and version (lifecycle.tracking)
    tracking_off: str | None = None  # why MLflow recorded nothing, in one sentence

    @property
    def service_py(self) -> Path:
        return self.build_dir / "src" / "service.py"

    @property
    def serve_command(self) -> str:
        return f"bentoml serve {self.tag} --host 127.0.0.1 --port 3000"

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "version": self.version,
            "metrics": self.metrics,
            "gates": self.gates,
            "bento_path": str(self.bento_path),
            "build_dir": str(self.build_dir),
            "service_py": str(self.service_py),
            "serve_command": self.serve_command,
            "cached": self.cached,
            "cache_off": self.cache_off,
            "serving": self.serving,
            "tracking": self.tracking,
            "tracking_off": self.tracking_off,
        }


@contextmanager
def _stage(progress: Progress | None, name: str) -> Iterator[None]:
    log.info("stage %s", name)
    if progress:
        progress(name, "start")
    yield
    if progress:
        progress(name, "done")


def build(
    notebook: str | Path,
    params: dict[str, Any] | None = None,
    *,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    gate: bool = True,
    use_cache: bool = True,
) -> BuildResult:
    """Build ``notebook`` into a bento in the local store and ``out_dir/<name>-<version>.bento``.

    Work happens in a hidden directory inside ``out_dir``; it is moved into place only when
    every stage succeeded. The store gets the model and bento only at the end, whole
    (:func:`nb2prod.bento.store.commit`). Builds of one bento name take turns (the store's
    lock), so a second build of the same notebook reuses the first's bento. Work dirs of
    builds that were killed are removed, and so are a failed build's leftovers of the same
    name (``<name>.failed.ipynb``, ``<name>.failed/``) once this one is committed.
    ``gate=False`` skips the generated property tests; the manifest records that it did.
    ``use_cache=False`` trains even when the build cache has this build (``nb2prod rebuild``).

    Each build is one MLflow run, and a good one a registry version
    (:mod:`nb2prod.lifecycle.tracking`; tracking never fails the build).

    Raises:
        Nb2ProdError: any stage failed; the message names the cell or file at fault.
    """
    out_dir = Path(out_dir or "bentos").resolve()
    call = functools.partial(_build, notebook, params, out_dir, progress, gate, use_cache)
    return track_build(notebook, params or {}, out_dir, call)


def _build(
    notebook: str | Path,
    params: dict[str, Any] | None,
    out_dir: Path,
    progress: Progress | None,
    gate: bool,
    use_cache: bool = True,
) -> BuildResult:
    with lifetime.stopping_cleanly(), ExitStack() as held:
        with _stage(progress, "check"):
            checked = check(notebook, strict=True)
            check_params(checked, params or {})
            nb = checked.notebook
            for finding in checked.findings:
                if finding.severity == "warning":
                    log.warning("%s", finding.message)
            cache_key = identity.cache_key(nb, params or {}, gate=gate)
            held.enter_context(store.lock(nb.settings.name))  # waits for a build of the name
            hit = cache.lookup(out_dir, cache_key) if use_cache else None
        if hit is not None:  # unchanged: reuse the bento, skip training (builder/cache.py)
            for stage in STAGES[1:]:
                if gate or stage.name != "test":
                    with _stage(progress, stage.name):
                        pass
            paths = {"bento_path": Path(hit["bento_path"]), "build_dir": Path(hit["build_dir"])}
            fields = {k: hit[k] for k in ("tag", "version", "metrics", "gates")}
            remove_failed(out_dir, nb.settings.name)
            serving = _manifest_serving(paths["build_dir"])
            return BuildResult(**fields, **paths, cached=True, serving=serving)
        lifetime.sweep(out_dir)
        result, model_tag, inputs = _run(checked, params or {}, out_dir, progress, gate=gate)
        remove_failed(out_dir, nb.settings.name)
        cache.record(out_dir, cache_key, result, model_tag, inputs)
        if inputs.off:  # the summary says so (BuildResult.cache_off)
            log.info("cache off for this notebook: %s", inputs.off)
        return result


def _manifest_serving(build_dir: Path) -> dict[str, Any] | None:
    """The runtime a cached build serves, from its manifest."""
    try:
        return json.loads((build_dir / "src" / "nb2prod.json").read_text()).get("serving")
    except (OSError, ValueError):
        return None


def remove_failed(out_dir: Path, name: str) -> None:
    """Remove what a failed build of ``name`` kept for the user; only after a success.

    Best effort: a leftover that cannot be removed is only stale, and the build succeeded.
    """
    notebook, kept = out_dir / f"{name}.failed.ipynb", out_dir / f"{name}.failed"
    try:
        notebook.unlink(missing_ok=True)
        if kept.is_dir() and not kept.is_symlink():
            shutil.rmtree(kept)
    except OSError as exc:
        log.warning("could not remove the failed build's leftovers %s: %s", kept, exc)


def _run(
    checked: CheckResult,
    params: dict[str, Any],
    out_dir: Path,
    progress: Progress | None,
    *,
    gate: bool,
) -> tuple[BuildResult, str, Inputs]:
    """Train, lift, test and bento in a fresh work dir; the result, the model's tag and
    what the training run read."""
    nb = checked.notebook
    work = lifetime.make_work_dir(out_dir, nb.settings.name)
    created: list[tuple[str, str]] = []
    try:
        with _stage(progress, "train"):
            training = run_training(
                checked,
                params,
                work / "train",
                keep_failed=out_dir / f"{nb.settings.name}.failed.ipynb",
            )
            inputs = reads.inputs(training.directory)  # hashed now, as close to the run
            on_evaluation = evaluation.evaluator(training.evaluation_file, training.classes)
            if training.evaluation and "skipped" in training.evaluation:
                log.info("no evaluation data: %s", training.evaluation["skipped"])
            gates = check_gates(nb.settings.gates, training.metrics, nb.path.name, on_evaluation)
        with _stage(progress, "lift"):
            src = work / "src"
            lifted = lift_into(src, checked, training, gates, gate=gate, inputs=inputs)
        final_dir = out_dir / f"{lifted.name}-{lifted.version}"
        bento_path = out_dir / f"{lifted.name}-{lifted.version}.bento"
        cached = store.exists("bento", lifted.tag) and bento_path.exists()
        if gate:
            with _stage(progress, "test"):
                run_gate(
                    work, training.model_file, nb.path.name, out_dir / f"{nb.settings.name}.failed"
                )
        else:
            log.warning("--no-gate: the generated property tests did not run (see the manifest)")
        with _stage(progress, "bento"):
            if not cached:
                created = package(work, lifted, training, nb.path.name, nb.sha256)
                os.replace(work / bento_path.name, bento_path)
            lifetime.finish(work)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            work.rename(final_dir)
    except BaseException as exc:
        for kind, tag in reversed(created):
            store.delete(kind, tag)
        lifetime.remove(work)
        if isinstance(exc, OSError) and not isinstance(exc, (TimeoutError, ConnectionError)):
            # writing the build output: a full or read-only --out
            raise BentoError(
                f"Cannot write the build output to {exc.filename or out_dir}: "
                f"{exc.strerror or exc} (free some space, or build with another --out).",
                path=str(exc.filename or out_dir),
            ) from exc
        raise
    result = BuildResult(
        tag=lifted.tag,
        version=lifted.version,
        metrics=training.metrics,
        bento_path=bento_path,
        build_dir=final_dir,
        gates=gates,
        cached=cached,
        cache_off=inputs.off,
        serving=lifted.manifest.get("serving"),
    )
    return result, lifted.manifest["model_tag"], inputs


def package(
    work: Path, lifted: Lifted, training: TrainingResult, notebook: str, sha256: str
) -> list[tuple[str, str]]:
    """The bento stage: model, bento and ``.bento`` made in ``work``, then committed to the store.

    The ``.bento`` file is left in ``work``. Returns the store entries this build added.
    """
    model = {
        "tag": lifted.manifest["model_tag"],
        "file": training.model_file,
        "module": training.model_module,
        "labels": {
            "notebook": notebook,
            "notebook_sha256": sha256[:16],
            **{f"metric.{k}": f"{v:.6g}" for k, v in training.metrics.items()},
        },
        "metadata": lifted.manifest,
    }
    staging = work / ".store"
    store.stage(
        staging, work / "src", lifted.version, model, work / f"{lifted.name}-{lifted.version}.bento"
    )
    created = store.commit(staging, model["tag"], lifted.tag)
    shutil.rmtree(staging, ignore_errors=True)
    return created


def lift_into(
    src: Path,
    checked: CheckResult,
    training: TrainingResult,
    gates: list[dict[str, Any]],
    *,
    gate: bool = True,
    inputs: Inputs | None = None,
) -> Lifted:
    """The lift stage: generate the bento's sources into ``src``, monitoring attached; the
    manifest records the data ``inputs`` training read (``nb2prod rebuild`` compares it)."""
    decide = functools.partial(decide_runtime, checked, training, src)  # model.onnx, or why not
    extra: dict[str, Any] = {"gates": gates}
    if inputs is not None:
        extra["data"] = reads.data_manifest(inputs, checked.notebook.path.parent)
    lifted = lift(checked, training, extra, gate=gate, runtime=decide)
    write(lifted.files, src)
    attach.attach(src, training, checked.notebook.settings, lifted.manifest)
    write([manifest_file(lifted.manifest)], src)  # with the monitoring entry attach added
    return lifted


def run_gate(work: Path, model_file: Path, notebook: str, keep: Path) -> None:
    """The test stage: run the generated tests of ``work/src``.

    Raises:
        PropertyFailed: a test failed. The build is first moved to ``keep`` (src/ and
            train/), so the commands in the error's report replay it there.
    """
    run = run_tests(work / "src", model_file, notebook=notebook)
    if run.ok:
        return
    if keep.exists():
        shutil.rmtree(keep)
    lifetime.finish(work)  # kept for the user, not a work dir any more
    shutil.move(str(work), str(keep))
    run.src = keep / "src"
    raise failure(run, notebook=notebook, model_file=keep / "train" / model_file.name, kept=keep)
