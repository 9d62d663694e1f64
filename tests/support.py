"""What tests of every tier share: paths, a real ``bentoml serve``, rows as JSON, fake runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from nb2prod.builder.training import TrainingResult

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# churn with one tree and a learning rate too small to learn: it passes its roc_auc gate but
# is far worse than the champion. Built into the session's churn out dir (its build cache) by
# test_shadow and test_lifecycle alike, so the suite trains it once.
WEAK_CHURN = {"n_estimators": 1, "learning_rate": 0.01}
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHECK = FIXTURES / "check"
PROPS = FIXTURES / "properties"
GOLDEN = Path(__file__).resolve().parent / "golden"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: missing values as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


@contextmanager
def serve(
    target: str, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run ``bentoml serve target`` on a free loopback port; yield its base URL; stop it."""
    import httpx

    port = free_port()
    log = open(Path(os.environ["BENTOML_HOME"]) / f"serve-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(BIN / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bentoml serve not ready after 120 s; see {log.name}")
            time.sleep(0.3)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@contextmanager
def background(
    command: list[str], ready: str, log: Path, env: dict[str, str], cwd: Path | None = None
) -> Iterator[None]:
    """Run ``command`` (in ``cwd``) in its own session until ``ready`` answers 200; stop it
    after."""
    import httpx

    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180  # mlflow server: ~17 s on a loaded 2-core machine
        while True:
            assert proc.poll() is None, f"{command[1]} exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(ready, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{ready} not ready: {log.read_text()[-2000:]}"
            time.sleep(0.3)
        yield
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:  # it had exited already (the assertion above says why)
            proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# `mlflow server` also starts a job runner and five queue consumers (GenAI jobs) by default;
# the registry and tracking need none of them
def mlflow_server_env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real ``mlflow server`` (one worker) on a free loopback port, its store in ``folder``;
    yield its URI; stop it."""
    folder.mkdir(parents=True)
    port = free_port()
    command = [
        *(str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--workers", "1"),
        *("--artifacts-destination", str(folder / "artifacts")),
    ]
    uri = f"http://127.0.0.1:{port}"
    with background(command, f"{uri}/health", folder / "server.log", mlflow_server_env()):
        yield uri


class Built:
    """A finished example build: its result and the paths tests look at."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.tag: str = result.tag
        self.src: Path = result.build_dir / "src"
        self.manifest: dict[str, Any] = json.loads((self.src / "nb2prod.json").read_text())

    def reference(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.src / "monitoring" / "reference.parquet")

    def notebook_predictions(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.src / "monitoring" / "predictions.parquet")


def fake_training(directory: Path) -> TrainingResult:
    """What a training run of the `clean` fixture leaves, without running a kernel."""
    import pandas as pd

    from nb2prod.builder.training import TrainingResult

    directory.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"x": [0.5, -1.25, 2.0], "color": ["red", "blue", "red"]})
    frame.to_parquet(directory / "reference.parquet", index=False)
    pd.DataFrame(
        {"prediction": [1, 0, 1], "proba_0": [0.1, 0.8, 0.3], "proba_1": [0.9, 0.2, 0.7]}
    ).to_parquet(directory / "predictions.parquet", index=False)
    return TrainingResult(
        directory=directory,
        executed=directory / "executed.ipynb",
        params={"threshold": "0.5", "seed": "0"},
        metrics={"accuracy": 0.95},
        reference_rows=3,
        has_proba=True,
        model_module="sklearn.tree._classes",
        classes=[0, 1],
    )


def normalize(text: str, version: str) -> str:
    """Remove what legitimately varies between machines: the version hash and pinned versions."""
    text = text.replace(version, "<version>")
    return re.sub(r"==[0-9][\w.+!-]*", "==<pinned>", text)


def generated(fixture: str, tmp_path: Path, *, runtime: bool = False) -> dict[str, str]:
    """The files generated for a check fixture after a fake training run, normalized.

    The runtime modules, copied verbatim from ``nb2prod/serving/``, are left out unless
    ``runtime``: they are tested as modules, and a golden copy would only repeat them.
    """
    from nb2prod import serving
    from nb2prod.builder.lift import lift
    from nb2prod.notebook.check import check

    lifted = lift(check(CHECK / f"{fixture}.ipynb"), fake_training(tmp_path / "train"))
    skip = {"nb2prod.json", *([] if runtime else serving.FILES)}
    return {g.path: normalize(g.text, lifted.version) for g in lifted.files if g.path not in skip}


def train_in_process(notebook: Path, out_dir: Path) -> tuple[Any, TrainingResult]:
    """Train ``notebook`` in this process, no kernel: the cells papermill would run, in order.

    The same prepared notebook as a build's (skip cells out, the export cell in), run with
    ``exec`` in one namespace from the notebook's folder. For tests of what comes after
    training (lift, gate, monitoring), at a fraction of a papermill run's cost.
    """
    from nb2prod.builder.training import collect, prepare
    from nb2prod.notebook.check import check
    from nb2prod.notebook.scope import strip_magics

    checked = check(notebook, strict=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    here = Path.cwd()
    os.chdir(notebook.parent)
    try:
        for cell in prepare(checked.notebook, out_dir, checked).cells:
            if cell.cell_type == "code":
                text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
                source, _ = strip_magics(text)
                exec(compile(source, f"{notebook.name} cell", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(here)
    return checked, collect(out_dir)


def lift_in_process(notebook: Path, work: Path) -> tuple[Any, TrainingResult]:
    """A build's ``work`` directory up to its test stage: ``train/`` in-process, ``src/`` lifted.

    Returns the check result and the training result.
    """
    from nb2prod.builder.pipeline import lift_into
    from nb2prod.notebook.gates import check_gates

    checked, training = train_in_process(notebook, work / "train")
    gates = check_gates(checked.notebook.settings.gates, training.metrics, notebook.name)
    lift_into(work / "src", checked, training, gates)
    return checked, training


CHURN_ROLES = {
    "tenure_months": "numerical",
    "monthly_charges": "numerical",
    "contract": "categorical",
    "payment_method": "categorical",
    "support_calls": "numerical",
}


def churn_rows(
    n: int,
    seed: int,
    *,
    tenure_shift: int = 0,
    contract_p: tuple = (0.55, 0.25, 0.2),
    calls_effect: float = 0.5,
    calls_rate: float = 1.5,
) -> pd.DataFrame:
    """Fresh rows from churn.ipynb's generator (another seed), plus the true ``churned``.

    ``tenure_shift``, ``contract_p`` and ``calls_rate`` (the mean number of support calls)
    move the inputs (data drift); ``calls_effect``, the
    weight of support calls in the churn odds, moves the outcome given the inputs (concept
    drift)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=n, p=list(contract_p))
    payment = rng.choice(["card", "bank-transfer", "electronic-check", "mailed-check"], size=n)
    tenure = np.clip(rng.integers(0, 73, size=n) + tenure_shift, 0, 120)
    charges = np.round(rng.gamma(4.0, 16.0, size=n) + 18, 2)
    calls = rng.poisson(calls_rate, size=n)
    logit = (
        -1.2
        + 2.0 * (contract == "month-to-month")
        - 0.06 * tenure
        + 0.02 * (charges - 70)
        + calls_effect * calls
        + 0.8 * (payment == "electronic-check")
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    raw = pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": charges,
            "contract": contract,
            "payment_method": payment,
            "support_calls": calls,
        }
    )
    raw.loc[rng.random(n) < 0.05, "monthly_charges"] = np.nan
    raw["payment_method"] = raw["payment_method"].astype(object)
    raw.loc[rng.random(n) < 0.08, "payment_method"] = None
    raw["churned"] = churned.astype(int)
    return raw


def assert_names_its_property(error: Any, fixture: str, prop: str) -> Path:
    """A gate failure names ``prop``, the entry point's cell of ``PROPS/fixture``, a falsifying
    frame and how to replay it, from the build kept where it says; return that directory."""
    from nb2prod.gate.properties import BY_KEY
    from nb2prod.notebook.read import read

    cell = read(PROPS / f"{fixture}.ipynb").with_role("features")[0]
    assert error.fields["property"] == prop
    assert f"property `{BY_KEY[prop].words}` failed" in str(error)
    assert f"cell {cell.index} (id {cell.id})" in str(error)
    report = error.fields["report"]
    assert report.startswith(f"✗ property failed: {BY_KEY[prop].words}\n")
    frame = report.split("smallest falsifying frame of ", 1)[1]
    assert "visits_per_month" in frame or "temperature_c" in frame  # a table with the columns
    assert f"--hypothesis-seed={error.fields['seed']}" in report
    assert "@reproduce_failure(" in report
    kept = Path(error.fields["kept"])
    assert (kept / "src" / "tests" / "test_properties.py").is_file()
    assert str(kept) in report
    assert f"Rerun: nb2prod test {kept} --seed {error.fields['seed']}." in str(error)
    return kept


GATES = [{"metric": "roc_auc", "value": 0.83, "bound": ">= 0.7", "passed": True}]


def tiny_bento(folder: Path) -> str:
    """A real bento in the BentoML store (a one-endpoint service, ~1 s to build); its tag."""
    import uuid

    import bentoml

    (folder / "service.py").write_text(
        "import bentoml\n\n\n@bentoml.service\nclass Tiny:\n"
        "    @bentoml.api\n    def ping(self) -> str:\n        return 'pong'\n"
    )
    made = bentoml.bentos.build(
        "service:Tiny",
        name="tiny",
        version=uuid.uuid4().hex[:12],
        build_ctx=str(folder),
        python={"lock_packages": False},
    )
    return str(made.tag)


def register(
    root: Path, name: str, bento_tag: str, roc_auc: float = 0.83, *, gate: bool = True
) -> int:
    """A registry version of ``name`` for ``bento_tag``, made the way a build makes one
    (``lifecycle.tracking.track_build`` on a finished build's result); its number."""
    from nb2prod.builder.pipeline import BuildResult
    from nb2prod.lifecycle import tracking

    version = bento_tag.split(":")[1]
    build_dir = root / f"{name}-{version}"
    (build_dir / "src").mkdir(parents=True)
    manifest = {
        "name": name,
        "parameters": {"seed": "7"},
        "build_time": "2026-12-01T16:23:40+00:00",
        "properties": {"gate": gate},
    }
    (build_dir / "src" / "nb2prod.json").write_text(json.dumps(manifest))
    built = BuildResult(
        tag=bento_tag,
        version=version,
        metrics={"roc_auc": roc_auc},
        bento_path=root / "x.bento",
        build_dir=build_dir,
        gates=[{**GATES[0], "value": roc_auc}],
    )
    tracking.track_build("x", {}, root, lambda: built)
    assert built.tracking is not None, built.tracking_off
    return built.tracking["version"]
