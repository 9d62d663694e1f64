"""What the route tests of both tiers share: the server's settings, a root, request helpers.

The fixtures are imported by name into the test modules, which load pytest-jupyter.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest
import tornado.httpclient

from tests.support import FIXTURES, NOTEBOOKS

UI = FIXTURES / "ui"
BAD = "features_uses_untagged.ipynb"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"nb2prod": True},
            "allow_unauthenticated_access": False,
        }
    }


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    shutil.copy(NOTEBOOKS / "diabetes.ipynb", jp_root_dir / "diabetes.ipynb")
    (jp_root_dir / "sub").mkdir()
    shutil.copy(UI / BAD, jp_root_dir / "sub" / BAD)
    return jp_root_dir


async def post(jp_fetch, route: str, body: dict) -> tornado.httpclient.HTTPResponse:
    return await jp_fetch("nb2prod", route, method="POST", body=json.dumps(body), raise_error=False)


def answer(response) -> dict:
    return json.loads(response.body)


async def jobs(jp_fetch) -> list[dict]:
    """The build jobs the server knows of, newest first."""
    return answer(await jp_fetch("nb2prod", "jobs"))["jobs"]


async def wait_for(jp_fetch, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = answer(await jp_fetch("nb2prod", "jobs", job_id))
        if job["state"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"build still {job['state']} after {timeout} s"
        await asyncio.sleep(0.5)
