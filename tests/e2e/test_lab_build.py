"""A build job through the Jupyter server route, from start to bento."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab_support import answer, jp_server_config, post, root, wait_for

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.e2e
__all__ = ["jp_server_config", "root"]  # fixtures, used by name


@pytest.mark.timeout(600)
async def test_a_build_job_runs_to_its_end_and_a_second_build_gets_409(
    jp_fetch, root: Path
) -> None:
    # Given a build of a real notebook, started through the route
    started = await post(jp_fetch, "build", {"path": "diabetes.ipynb", "params": {"alpha": "0.5"}})
    assert started.code == 202
    job_id = answer(started)["id"]
    # When the same notebook is built again while it runs
    again = await post(jp_fetch, "build", {"path": "diabetes.ipynb"})
    # Then that is refused with 409, naming the running job
    assert again.code == 409
    assert answer(again)["error"] == "BuildInProgress"
    assert answer(again)["job"] == job_id
    # And the first build reaches its end, with every stage done and the log kept
    job = await wait_for(jp_fetch, job_id)
    assert job["state"] == "succeeded", job["error"]
    assert set(job["stages"].values()) == {"done"}
    assert job["params"] == {"alpha": 0.5}  # read as `-p alpha 0.5` reads it
    assert job["log"][0] == "Building diabetes.ipynb"
    assert any(line.startswith("[bento] done") for line in job["log"])
    result = job["result"]
    assert result["tag"].startswith("diabetes:")
    assert (root / result["service_py"]).is_file()  # root-relative, so the panel can open it
    assert "r2" in result["metrics"]
    # And the log can be read from an offset, as the panel polls it
    tail = answer(await jp_fetch("nb2prod", "jobs", job_id, params={"since": len(job["log"]) - 1}))
    assert tail["log"] == job["log"][-1:]
    listed = answer(await jp_fetch("nb2prod", "jobs", params={"path": "diabetes.ipynb"}))
    assert [j["id"] for j in listed["jobs"]] == [job_id]
