"""``nb2prod build``: check, train, lift, test, bento; one recipe, side effects at the ends."""

from __future__ import annotations

import logging
import operator
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod import bento as store
from nb2prod import cache, monitoring
from nb2prod.analysis import analyze
from nb2prod.codegen import write
from nb2prod.errors import CheckFailed, GateFailed, PropertyFailed, TrainingError
from nb2prod.lift import lift, manifest_file
from nb2prod.notebook import read
from nb2prod.properties import read_settings as read_property_settings
from nb2prod.testing import keep_failed, run_tests
from nb2prod.training import run as run_training

log = logging.getLogger(__name__)
STAGES = ("check", "train", "lift", "test", "bento")
Progress = Callable[[str, str], None]
_GATE = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


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

    @property
    def service_py(self) -> Path:
        return self.build_dir / "src" / "service.py"

    @property
    def serve_command(self) -> str:
        return f"bentoml serve {self.tag} --host 127.0.0.1 --port 3000"

    def to_dict(self) -> dict[str, Any]:
        report = self.build_dir / "monitoring.html"
        return {
            "tag": self.tag,
            "version": self.version,
            "metrics": self.metrics,
            "gates": self.gates,
            "bento_path": str(self.bento_path),
            "build_dir": str(self.build_dir),
            "service_py": str(self.service_py),
            "monitoring_report": str(report) if report.exists() else None,
            "serve_command": self.serve_command,
            "cached": self.cached,
        }


def check_gates(gates: dict[str, str], metrics: dict[str, float], notebook: str) -> list[dict]:
    """Compare metrics with ``{"roc_auc": ">= 0.8"}`` bounds; raise on the first miss."""
    results = []
    for metric, bound in gates.items():
        match = _GATE.match(str(bound))
        if not match:
            raise GateFailed(
                f"{notebook}: gate `{metric}: {bound}` is not of the form '>= 0.8'.", metric=metric
            )
        op, limit = match[1], float(match[2])
        if metric not in metrics:
            raise GateFailed(
                f"{notebook}: gate on `{metric}` cannot be checked: the notebook's metrics are "
                f"{', '.join(metrics) or 'empty'}.",
                metric=metric,
            )
        value = metrics[metric]
        passed = _OPS[op](value, limit)
        results.append(
            {"metric": metric, "value": value, "bound": f"{op} {limit:g}", "passed": passed}
        )
        if not passed:
            raise GateFailed(
                f"{notebook}: metric gate failed: {metric} = {value:.4g}, which is not {op} {limit:g}.",
                metric=metric,
                value=value,
                bound=f"{op} {limit:g}",
            )
    return results


def _keep_executed(exc: TrainingError, target: Path) -> None:
    """Keep the failed run's executed notebook (not a half-built bento) and point to it."""
    executed = exc.fields.get("executed")
    if not executed or not Path(executed).exists():
        return
    shutil.move(executed, target)
    exc.message = exc.message.replace(executed, str(target))
    exc.args = (exc.message,)
    exc.fields["executed"] = str(target)


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
) -> BuildResult:
    """Build ``notebook`` into a bento in the local store and ``out_dir/<name>-<version>.bento``.

    Work happens in a temporary directory inside ``out_dir``; it is moved into place only when
    every stage succeeded, and store entries this build made are removed on failure.
    ``gate=False`` skips the generated property tests; the manifest records that it did.

    Raises:
        Nb2ProdError: any stage failed; the message names the cell or file at fault.
    """
    out_dir = Path(out_dir or "bentos").resolve()
    with _stage(progress, "check"):
        nb = read(notebook)
        report = analyze(nb)
        if not report.ok:
            first, more = report.errors[0], len(report.errors) - 1
            extra = f" ({more} more error(s): run nb2prod check)" if more else ""
            raise CheckFailed(first.message + extra, report.findings)
        for finding in report.findings:
            if finding.severity == "warning":
                log.warning("%s", finding.message)
        read_property_settings(nb)  # a bad nb2prod.properties fails before training
        cache_key = cache.key(nb, params or {}, gate=gate)
        hit = cache.lookup(out_dir, cache_key)
    if hit is not None:  # unchanged: reuse the bento, skip training (nb2prod/cache.py)
        for stage in STAGES[1:]:
            if gate or stage != "test":
                with _stage(progress, stage):
                    pass
        paths = {"bento_path": Path(hit["bento_path"]), "build_dir": Path(hit["build_dir"])}
        fields = {k: hit[k] for k in ("tag", "version", "metrics", "gates")}
        return BuildResult(**fields, **paths, cached=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{nb.settings.name}-", dir=out_dir))
    created: list[tuple[str, str]] = []
    try:
        with _stage(progress, "train"):
            training = run_training(report, params or {}, work / "train")
            gates = check_gates(nb.settings.gates, training.metrics, nb.path.name)
        with _stage(progress, "lift"):
            lifted = lift(report, training, {"gates": gates}, gate=gate)
            src = work / "src"
            write(lifted.files, src)
            monitoring.attach(src, training, nb.settings, lifted.manifest)
            write([manifest_file(lifted.manifest)], src)
        final_dir = out_dir / f"{lifted.name}-{lifted.version}"
        bento_path = out_dir / f"{lifted.name}-{lifted.version}.bento"
        cached = store.exists("bento", lifted.tag) and bento_path.exists()
        if gate:
            with _stage(progress, "test"):
                run_tests(src, training.model_file, notebook=nb.path.name)
        else:
            log.warning("--no-gate: the generated property tests did not run (see the manifest)")
        with _stage(progress, "bento"):
            if not cached:
                labels = {
                    "notebook": nb.path.name,
                    "notebook_sha256": nb.sha256[:16],
                    **{f"metric.{k}": f"{v:.6g}" for k, v in training.metrics.items()},
                }
                model_tag = lifted.manifest["model_tag"]
                if store.save_model(model_tag, training.model_file, labels, lifted.manifest):
                    created.append(("model", model_tag))
                if not store.exists("bento", lifted.tag):
                    store.build(src, lifted.version)
                    created.append(("bento", lifted.tag))
                store.export(lifted.tag, bento_path)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            work.rename(final_dir)
    except BaseException as exc:
        for kind, tag in reversed(created):
            store.delete(kind, tag)
        if isinstance(exc, TrainingError):
            _keep_executed(exc, out_dir / f"{nb.settings.name}.failed.ipynb")
        if isinstance(exc, PropertyFailed):
            keep_failed(exc, work, out_dir / f"{nb.settings.name}.failed")
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = BuildResult(
        tag=lifted.tag,
        version=lifted.version,
        metrics=training.metrics,
        bento_path=bento_path,
        build_dir=final_dir,
        gates=gates,
        cached=cached,
    )
    cache.record(out_dir, cache_key, result, lifted.manifest["model_tag"])
    return result
