"""`make demo`: build a notebook into a bento, serve it on loopback, show one good and one bad call.

Usage: python scripts/demo.py notebooks/churn.ipynb
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def main(notebook: str) -> int:
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
    print(f"$ nb2prod build {notebook}", flush=True)
    subprocess.run([str(BIN / "nb2prod"), "build", notebook], check=True, env=env, cwd=ROOT)
    manifest = max((ROOT / "bentos").glob("*/src/nb2prod.json"), key=lambda p: p.stat().st_mtime)
    meta = json.loads(manifest.read_text())
    reference = manifest.parent / "monitoring" / "reference.parquet"
    import pandas as pd

    row = pd.read_parquet(reference).head(1)
    row = row.astype(object).where(row.notna(), None).to_dict(orient="records")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"$ bentoml serve {meta['tag']} --host 127.0.0.1 --port {port}", flush=True)
    server = subprocess.Popen(
        [str(BIN / "bentoml"), "serve", meta["tag"], "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            print("the server did not become ready in 90 s", file=sys.stderr)
            return 1
        print(f"\nPOST {base}/predict {json.dumps({'rows': row})}")
        status, body = post(f"{base}/predict", {"rows": row})
        print(f"-> {status} {json.dumps(body)}")
        bad = dict(row[0])
        first = next(iter(bad))
        bad[first] = "not a number" if not isinstance(bad[first], str) else 12345
        bad.pop(list(bad)[-1])
        print(f"\nPOST {base}/predict {json.dumps({'rows': [bad]})}")
        status, body = post(f"{base}/predict", {"rows": [bad]})
        print(f"-> {status} {json.dumps(body, indent=2)}")
        return 0
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        print("\nserver stopped")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks/churn.ipynb"))
