"""``nb2prod check`` timed as the user meets it: the CLI from process start, the panel's route per call.

    python -m benchmarks.check_timing notebooks/churn.ipynb

``cli_seconds`` runs ``nb2prod check NOTEBOOK`` as a fresh process each time (the wall time of
the whole process, interpreter start included). ``route_ms`` starts a real Jupyter server on a
free loopback port with a token and the nb2prod server extension, then POSTs
``{"path", "content"}`` to ``/nb2prod/check`` as the JupyterLab panel does (token, XSRF header
and cookie, the notebook's JSON as the editor holds it) over one kept-alive connection, and
times each call from request to the whole answer read.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path

NB2PROD = Path(sys.executable).with_name("nb2prod")


def cli_seconds(notebook: Path, runs: int) -> list[float]:
    """Wall seconds of ``nb2prod check NOTEBOOK``, one fresh process per run.

    Raises:
        RuntimeError: check did not answer (an exit code other than 0 or 1, its findings).
    """
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [str(NB2PROD), "check", str(notebook)], capture_output=True, text=True, check=False
        )
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"nb2prod check {notebook} failed:\n{done.stderr}")
    return times


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _server(root: Path, work: Path) -> Iterator[tuple[int, str]]:
    """A Jupyter server with the nb2prod extension on 127.0.0.1; (port, token); stopped after."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "JUPYTER_CONFIG_DIR": str(work / "config"),
        "JUPYTER_DATA_DIR": str(work / "data"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    command = [
        *(sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root"),
        *("--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}"),
        *(f"--ServerApp.root_dir={root}", "--ServerApp.allow_unauthenticated_access=False"),
        '--ServerApp.jpserver_extensions={"nb2prod": True}',
    ]
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError((work / "server.log").read_text()[-4000:])
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Jupyter server did not start in 120 s")
            time.sleep(0.2)
        yield port, token
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _xsrf(conn: http.client.HTTPConnection) -> str:
    """The ``_xsrf`` cookie the server hands a browser with its first page (the login page)."""
    conn.request("GET", "/login")
    response = conn.getresponse()
    response.read()
    for header in response.headers.get_all("Set-Cookie") or []:
        cookie = SimpleCookie(header)
        if "_xsrf" in cookie:
            return cookie["_xsrf"].value
    raise RuntimeError("the Jupyter server set no _xsrf cookie on its login page")


def route_ms(notebook: Path, calls: int) -> list[float]:
    """Milliseconds per ``POST /nb2prod/check`` of NOTEBOOK's JSON on a real Jupyter server.

    The first call is a warm-up (the server imports the analysis then) and is not returned.

    Raises:
        RuntimeError: the server did not start, or the route did not answer 200.
    """
    notebook = Path(notebook)
    with tempfile.TemporaryDirectory(prefix="nb2prod-check-timing-") as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        shutil.copy(notebook, root / notebook.name)
        body = json.dumps({"path": notebook.name, "content": json.loads(notebook.read_text())})
        with _server(root, work) as (port, token):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            xsrf = _xsrf(conn)
            headers = {
                "Authorization": f"token {token}",
                "X-XSRFToken": xsrf,
                "Cookie": f"_xsrf={xsrf}",
                "Content-Type": "application/json",
            }
            times = []
            for _ in range(calls + 1):
                start = time.perf_counter()
                conn.request("POST", "/nb2prod/check", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                times.append((time.perf_counter() - start) * 1000)
                if response.status != 200:
                    raise RuntimeError(f"/nb2prod/check answered {response.status}: {answer[:500]}")
            conn.close()
    return times[1:]


def main() -> None:
    import statistics

    for arg in sys.argv[1:] or ["notebooks/churn.ipynb", "notebooks/diabetes.ipynb"]:
        cli = cli_seconds(Path(arg), 5)
        route = route_ms(Path(arg), 20)
        print(
            f"{Path(arg).name}: check from process start median {statistics.median(cli):.2f} s "
            f"({', '.join(f'{t:.2f}' for t in cli)}); route median {statistics.median(route):.1f} ms"
            f" (min {min(route):.1f}, max {max(route):.1f}, {len(route)} calls)"
        )


if __name__ == "__main__":
    main()
