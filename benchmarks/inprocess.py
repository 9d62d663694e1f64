"""The served path without the server: a bento's own service object, called in-process.

``python -m benchmarks.inprocess SRC PAYLOADS`` imports ``SRC/service.py`` (the bento's
``src/``, with the model from the BentoML store in ``BENTOML_HOME``), makes the service
instance as ``bentoml serve`` does, and answers lines on stdin: ``N`` runs ``N`` calls of its
``predict`` one after the other (validate, entry point, model, answer: what a request runs
once BentoML has parsed it) and prints one JSON line of latencies in ms; an empty line ends
it. A process of its own per bento: two bentos' ``lifted`` packages would collide in one.

:class:`InProcess` drives it from the bench, so its calls can take turns with the servers'.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

from benchmarks.load import LoadResult, percentile

ROOT = Path(__file__).resolve().parent.parent


def service_instance(src: Path) -> Any:
    """The bento's service object, instantiated as a worker does (model loaded)."""
    import bentoml

    sys.path.insert(0, str(src))
    module = importlib.import_module("service")
    services = [v for v in vars(module).values() if isinstance(v, bentoml.Service)]
    if not services:
        raise RuntimeError(f"{src / 'service.py'} defines no bentoml service")
    return services[0]()


class _Context:
    """What the service's ``predict`` reads of ``bentoml.Context`` (only on a rejection)."""

    def __init__(self) -> None:
        self.response = SimpleNamespace(status_code=200)


def serve_stdin(src: Path, payloads_file: Path) -> None:
    payloads = json.loads(payloads_file.read_text())
    instance = service_instance(src)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def calls(n: int) -> tuple[list[float], int]:
        times, bad = [], 0
        for i in range(n):
            ctx = _Context()
            start = time.perf_counter()
            answer = await instance.predict(payloads[i % len(payloads)]["rows"], ctx)
            times.append((time.perf_counter() - start) * 1000)
            bad += ctx.response.status_code != 200 or not hasattr(answer, "predictions")
        return times, bad

    loop.run_until_complete(calls(50))  # warm up: first predict, imports, the batcher's thread
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        start = time.perf_counter()
        times, bad = loop.run_until_complete(calls(int(line)))
        seconds = time.perf_counter() - start
        print(json.dumps({"latencies_ms": times, "errors": bad, "seconds": seconds}), flush=True)


class InProcess:
    """A running ``benchmarks.inprocess`` worker for one bento; ``run(n)`` is a LoadResult."""

    def __init__(self, src: Path, payloads: list[dict], work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        payloads_file = work / "inprocess-payloads.json"
        payloads_file.write_text(json.dumps(payloads))
        self.log = work / "inprocess.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.inprocess", str(src), str(payloads_file)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self._read()  # {"ready": true}

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"in-process worker exited; see {self.log}")
        return json.loads(line)

    def run(self, requests: int) -> LoadResult:
        self.proc.stdin.write(f"{requests}\n")
        self.proc.stdin.flush()
        out = self._read()
        latencies = out["latencies_ms"]
        return LoadResult(
            requests=requests,
            concurrency=1,
            rows_per_request=1,
            seconds=out["seconds"],
            statuses={"200": requests - out["errors"]} if out["errors"] < requests else {},
            errors=out["errors"],
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            latencies_ms=latencies,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve_stdin(Path(sys.argv[1]), Path(sys.argv[2]))
