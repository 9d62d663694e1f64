"""Build a notebook for the bench, time its stages, and open what the servers need of the bento."""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    "churn": ROOT / "notebooks" / "churn.ipynb",
    "diabetes": ROOT / "notebooks" / "diabetes.ipynb",
}
# The notebook no code path was tuned for: its schema is not coerced and not on the fast path.
UNTUNED = {"bookings": ROOT / "benchmarks" / "notebooks" / "bookings.ipynb"}
GATE_STAGE = "test"  # the build stage that runs the generated property tests


def with_runtime(notebook: Path, runtime: str, name: str, work: Path) -> Path:
    """A copy of ``notebook`` in ``work`` that sets ``serving.runtime`` and names its bento
    ``name``: the same model served by the other runtime."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    settings = nb.setdefault("metadata", {}).setdefault("nb2prod", {})
    settings["name"] = name
    settings.setdefault("serving", {})["runtime"] = runtime
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{name}.ipynb"
    out.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return out


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: missing values as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def timed_build(notebook: Path, out: Path) -> dict[str, Any]:
    """``nb2prod.build`` with the time of each stage."""
    from nb2prod.builder.pipeline import build

    stages: dict[str, float] = {}
    started: dict[str, float] = {}

    def progress(stage: str, event: str) -> None:
        if event == "start":
            started[stage] = time.perf_counter()
        else:
            stages[stage] = time.perf_counter() - started[stage]

    start = time.perf_counter()
    result = build(notebook, out_dir=out, progress=progress)
    return {"total_s": time.perf_counter() - start, "stages_s": stages, "result": result}


def bench_build(notebook: Path, out: Path, *, rebuild: bool = True) -> tuple[dict[str, Any], Any]:
    """A cold build, then (``rebuild``) the same build again with nothing changed."""
    cold = timed_build(notebook, out)
    result = cold.pop("result")
    report: dict[str, Any] = {"cold": cold, "gate_s": cold["stages_s"].get(GATE_STAGE)}
    if rebuild:
        warm = timed_build(notebook, out)
        warm_result = warm.pop("result")
        report["rebuild"] = {
            **warm,
            "cached": warm_result.cached,
            "same_tag": warm_result.tag == result.tag,
        }
    return report, result


def runtime_of(manifest: dict[str, Any]) -> str:
    """Which runtime serves the model: the manifest's ``serving.runtime``, else ``python``."""
    serving = manifest.get("serving")
    runtime = serving.get("runtime") if isinstance(serving, dict) else None
    return runtime if isinstance(runtime, str) and runtime else "python"


@dataclass
class Built:
    """A built bento as the bench serves it, with what its baseline gets of it."""

    name: str
    tag: str
    src: Path
    manifest: dict[str, Any]
    frame: Any  # the reference rows (raw inputs), a DataFrame
    model: Any  # the pickled model, unpickled
    model_file: Path  # the same model ``joblib.dump``-ed, as the baseline loads it

    @property
    def runtime(self) -> str:
        return runtime_of(self.manifest)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return records(self.frame)

    def payloads(self, count: int = 1000) -> list[dict[str, Any]]:
        """One-row request bodies, cycling through the first ``count`` reference rows."""
        return [{"rows": [row]} for row in self.rows[:count]]

    def baseline_env(self) -> dict[str, str]:
        """The baseline server's environment: this bento's lifted code and model."""
        return {
            "NB2PROD_BASELINE_SRC": str(self.src),
            "NB2PROD_BASELINE_MODEL": str(self.model_file),
            "NB2PROD_BASELINE_ENTRYPOINT": self.manifest.get("entrypoint") or "",
            "PYTHONPATH": str(ROOT),
        }

    def summary(self) -> dict[str, Any]:
        serving = self.manifest.get("serving")
        return {
            "tag": self.tag,
            "runtime": self.runtime,
            "serving": serving if isinstance(serving, dict) else None,
        }


def open_built(name: str, result: Any, work: Path) -> Built:
    """The bento of a build result: reference rows, manifest, and the model for the baseline."""
    import bentoml
    import joblib
    import pandas as pd

    src = result.build_dir / "src"
    manifest = json.loads((src / "nb2prod.json").read_text())
    frame = pd.read_parquet(src / "monitoring" / "reference.parquet")
    with open(bentoml.models.get(manifest["model_tag"]).path_of("model.pkl"), "rb") as fh:
        model = pickle.load(fh)
    model_file = work / f"{name}-model.joblib"
    joblib.dump(model, model_file)  # what the baseline loads, as the guides do
    return Built(name, result.tag, src, manifest, frame, model, model_file)
