"""Build jobs: states, stages, the per-notebook lock and the captured log (fake builds)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from nb2prod.errors import BuildInProgress, TrainingError
from nb2prod.lab.jobs import JobRegistry


class FakeResult:
    def to_dict(self) -> dict:
        return {"tag": "demo:abc123", "version": "abc123", "metrics": {"roc_auc": 0.9}}


def wait(job, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while job.state not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job stuck in {job.state}"
        time.sleep(0.01)
    return job


@pytest.fixture
def registry():
    made = []

    def make(build):
        made.append(JobRegistry(build=build))
        return made[-1]

    yield make
    for reg in made:
        reg.close()


def test_a_build_runs_its_stages_and_logs(registry, tmp_path: Path) -> None:
    # Given a build that reports every stage and logs through the nb2prod logger
    def build(path, params, *, out_dir, progress):
        for stage in ("check", "train", "lift", "test", "bento"):
            progress(stage, "start")
            logging.getLogger("nb2prod.builder.training").info("working on %s", stage)
            progress(stage, "done")
        return FakeResult()

    reg = registry(build)
    # When it runs
    job = wait(reg.submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path / "bentos"))
    # Then the job succeeded with the result, every stage done and the log captured
    assert job.state == "succeeded"
    assert job.result["tag"] == "demo:abc123"
    assert set(job.stages.values()) == {"done"}
    assert "INFO nb2prod.builder.training: working on train" in job.log
    assert job.to_dict(since=len(job.log) - 1)["log"] == ["Built demo:abc123"]


def test_a_second_build_of_the_same_notebook_gets_409(registry, tmp_path: Path) -> None:
    # Given a build that is still running
    release = threading.Event()

    def build(path, params, *, out_dir, progress):
        release.wait(5)
        return FakeResult()

    reg = registry(build)
    first = reg.submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path)
    # When the same notebook is built again
    with pytest.raises(BuildInProgress) as info:
        reg.submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path)
    # Then it is refused with 409, while another notebook may build
    assert info.value.http_status == 409
    other = reg.submit(tmp_path / "other.ipynb", "other.ipynb", {}, tmp_path)
    release.set()
    wait(first), wait(other)
    # And once the first has finished, the notebook builds again
    wait(reg.submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path))


def test_a_failed_build_reports_the_library_message(registry, tmp_path: Path) -> None:
    # Given a build that fails in training
    def build(path, params, *, out_dir, progress):
        progress("check", "start")
        progress("check", "done")
        progress("train", "start")
        raise TrainingError("Training failed in cell 4: ZeroDivisionError.", cell_index=4)

    # When it runs
    job = wait(registry(build).submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path))
    # Then the job failed with the error's own JSON, and the stage is marked failed
    assert job.state == "failed"
    assert job.error == {
        "error": "TrainingError",
        "message": "Training failed in cell 4: ZeroDivisionError.",
        "cell_index": 4,
    }
    assert job.stages["train"] == "failed"
    assert job.log[-1] == "Error: Training failed in cell 4: ZeroDivisionError."


def test_an_unexpected_exception_still_ends_the_job(registry, tmp_path: Path) -> None:
    def build(path, params, *, out_dir, progress):
        raise RuntimeError("boom")

    job = wait(registry(build).submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path))
    assert job.state == "failed"
    assert job.error["error"] == "InternalError"
    assert "RuntimeError: boom" in job.error["message"]


class FakeSuggestion:
    def to_dict(self) -> dict:
        return {
            "cells": [
                {"role": "features", "source": "def features(df): ...", "insert_after_index": 3}
            ],
            "skipped": [3],
            "diff": "+def features(df): ...",
        }


@pytest.fixture
def suggesting():
    made = []

    def make(suggest, build=None):
        made.append(JobRegistry(build=build, suggest=suggest))
        return made[-1]

    yield make
    for reg in made:
        reg.close()


def test_a_suggestion_runs_as_a_job_and_carries_its_result(suggesting, tmp_path: Path) -> None:
    # Given a suggest function that logs through the nb2prod logger
    calls = []

    def suggest(path, content=None):
        calls.append((path, content))
        logging.getLogger("nb2prod.suggest").info("inferring the schema")
        return FakeSuggestion()

    content = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    # When a suggestion is asked for, with the editor's content
    job = wait(suggesting(suggest).submit_suggest(tmp_path / "nb.ipynb", "nb.ipynb", content))
    # Then the library got that content, and the job carries the suggestion, its one stage
    # done and the log captured
    assert calls == [(tmp_path / "nb.ipynb", content)]
    assert job.state == "succeeded"
    data = job.to_dict()
    assert data["kind"] == "suggest"
    assert data["suggestion"] == FakeSuggestion().to_dict()
    assert data["result"] is None
    assert data["stages"] == {"suggest": "done"} and data["stage_labels"] == {"suggest": "suggest"}
    assert data["log"][0] == "Suggesting contract cells for nb.ipynb"
    assert "INFO nb2prod.suggest: inferring the schema" in data["log"]
    assert data["log"][-1] == "Suggested 1 cell(s)"


def test_one_suggestion_per_notebook_at_a_time_and_builds_go_on(suggesting, tmp_path: Path) -> None:
    # Given a suggestion that is still running
    release = threading.Event()

    def suggest(path, content=None):
        release.wait(5)
        return FakeSuggestion()

    def build(path, params, *, out_dir, progress):
        return FakeResult()

    reg = suggesting(suggest, build)
    first = reg.submit_suggest(tmp_path / "nb.ipynb", "nb.ipynb")
    # When the same notebook's suggestion is asked for again
    with pytest.raises(BuildInProgress) as info:
        reg.submit_suggest(tmp_path / "nb.ipynb", "nb.ipynb")
    # Then it is refused with 409, naming the running job; a build of the notebook still runs
    assert info.value.http_status == 409
    assert info.value.fields["job"] == first.id
    assert "suggestion for nb.ipynb is already being made" in str(info.value)
    built = wait(reg.submit(tmp_path / "nb.ipynb", "nb.ipynb", {}, tmp_path))
    assert built.state == "succeeded" and built.to_dict()["kind"] == "build"
    assert "suggestion" not in built.to_dict()
    release.set()
    assert wait(first).state == "succeeded"


def test_a_failed_suggestion_reports_the_library_message(suggesting, tmp_path: Path) -> None:
    def suggest(path, content=None):
        raise TrainingError("Training failed in cell 4: ZeroDivisionError.", cell_index=4)

    job = wait(suggesting(suggest).submit_suggest(tmp_path / "nb.ipynb", "nb.ipynb"))
    assert job.state == "failed"
    assert job.error["message"] == "Training failed in cell 4: ZeroDivisionError."
    assert job.stages == {"suggest": "failed"}
    assert job.suggestion is None


def test_an_unexpected_exception_ends_the_suggestion(suggesting, tmp_path: Path) -> None:
    def suggest(path, content=None):
        raise RuntimeError("boom")

    job = wait(suggesting(suggest).submit_suggest(tmp_path / "nb.ipynb", "nb.ipynb"))
    assert job.state == "failed"
    assert job.error["error"] == "InternalError"
    assert job.error["message"].startswith(
        "The suggestion failed unexpectedly (RuntimeError: boom)"
    )
