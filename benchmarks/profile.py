"""Where a lone request's time goes: py-spy on the serving worker, samples put in stages.

``python -m benchmarks.profile TAG [--requests N] [--rate HZ] [--raw FILE]`` serves the bento
``TAG`` (from the current ``BENTOML_HOME``) on a free loopback port, sends ``N`` one-row
requests one at a time (concurrency 1, rows from the bento's own reference data), and records
the serving processes with ``py-spy record --subprocesses --format raw``. Every sample that is
not idle is put in one stage by the innermost frame that names it (the order of ``STAGES``
decides when a stack names more than one), and the table gives each stage's share of the busy
samples and its time per request.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.load import load
from benchmarks.servers import BIN, bentoml_command, running

# (stage, substrings of a frame "function (file:line)" that put a sample in it), checked from
# the innermost frame outwards; the first stage any frame matches wins.
STAGES = (
    ("model", ("sklearn/", "onnxruntime", "nb2prod_compiled", "nb2prod_runtime", "Model.__init__")),
    ("entry point", ("lifted/",)),
    ("validation", ("nb2prod_validation", "nb2prod_fastpath", "nb2prod_batched", "pandera/")),
    ("answer", ("model_construct", "JSONResponse", "render", "dump_json", "nb2prod_sink")),
    ("JSON", ("json/", "orjson", "validate_json", "validate_python", "_read_body", "from_http")),
    ("HTTP/ASGI", ("uvicorn", "starlette", "h11", "httptools", "bentoml/", "opentelemetry")),
)
IDLE = (
    "select (selectors.py",
    "epoll",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
)


def stage_of(stack: list[str]) -> str:
    """The stage of one sample: its stack's frames, outermost first."""
    for frame in reversed(stack):
        for name, marks in STAGES:
            if any(m in frame for m in marks):
                return name
    return "other (interpreter, event loop)"


def breakdown(raw: str) -> dict[str, int]:
    """Busy samples per stage, from py-spy's raw output (``frame;frame;... count`` lines)."""
    out: Counter = Counter()
    for line in raw.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        stack = stack_text.split(";")
        if any(mark in stack[-1] for mark in IDLE):
            continue
        out[stage_of(stack)] += int(count)
    return dict(out)


def profile(
    tag: str, requests: int, rate: int, raw_file: Path | None, concurrency: int = 1
) -> dict:
    """Serve ``tag``, profile ``requests`` one-row requests sent ``concurrency`` at a time;
    return the breakdown and latency."""
    import bentoml
    import pandas as pd

    bento = bentoml.get(tag)
    reference = Path(bento.path) / "src" / "monitoring" / "reference.parquet"
    frame = pd.read_parquet(reference)
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    payloads = [{"rows": [row]} for row in rows[:500]]
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    work = Path(tempfile.mkdtemp(prefix="nb2prod-profile-"))
    raw_path = raw_file or work / "profile.txt"
    with running(lambda port: bentoml_command(tag, port), log_dir=work) as server:
        url = f"{server.url}/predict"
        load(url, payloads, requests=100, concurrency=1)  # warm up
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate",
             str(rate), "--format", "raw", "--nonblocking", "--output", str(raw_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(2)  # py-spy attaches to every process
        result = load(url, payloads, requests=requests, concurrency=concurrency)
        recorder.send_signal(2)  # SIGINT: py-spy writes the file and exits
        recorder.wait(timeout=60)
    samples = breakdown(raw_path.read_text())
    busy = sum(samples.values()) or 1
    per_request_ms = result.seconds * 1000 / requests
    return {
        "tag": tag,
        "requests": requests,
        "concurrency": concurrency,
        "p50_ms": result.p50_ms,
        "mean_ms": per_request_ms,
        "errors": result.errors,
        "busy_samples": busy,
        "stages": {
            name: {"share": n / busy, "ms_per_request": n / rate * 1000 / requests}
            for name, n in sorted(samples.items(), key=lambda kv: -kv[1])
        },
        "raw": str(raw_path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag", help="a bento tag in the current BENTOML_HOME")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output here")
    parser.add_argument("--json", type=Path, help="write the breakdown here")
    args = parser.parse_args(argv)
    out = profile(args.tag, args.requests, args.rate, args.raw, args.concurrency)
    print(
        f"{out['tag']}: {out['requests']} one-row requests at concurrency {out['concurrency']}, "
        f"p50 {out['p50_ms']:.2f} ms"
    )
    print(f"{'stage':<34}{'share of busy':>14}{'ms/request':>12}")
    for name, s in out["stages"].items():
        print(f"{name:<34}{s['share']:>13.1%}{s['ms_per_request']:>12.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
