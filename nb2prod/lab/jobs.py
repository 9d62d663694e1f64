"""Jobs for the Jupyter server: builds and suggestions, each in a worker thread, with stage
and log."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.builder.pipeline import STAGES
from nb2prod.builder.pipeline import build as run_build
from nb2prod.errors import BuildInProgress, InternalError, Nb2ProdError

log = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed")
_KEEP = 50  # finished jobs remembered for their status and log
BuildFn = Callable[..., Any]
SuggestFn = Callable[..., Any]
# A suggestion is one step (a papermill run of the notebook and the inference after it).
SUGGEST_LABELS = {"suggest": "suggest"}


def _labels(kind: str) -> dict[str, str]:
    return SUGGEST_LABELS if kind == "suggest" else {s.name: s.label for s in STAGES}


@dataclass
class Job:
    """One build (or suggestion) of one notebook: its state, current stage and log so far."""

    id: str
    notebook: str
    key: str
    params: dict[str, Any]
    kind: str = "build"  # build, suggest
    state: str = "queued"  # queued, running, succeeded, failed
    stage: str | None = None
    stages: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    suggestion: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def __post_init__(self) -> None:
        if not self.stages:
            self.stages = dict.fromkeys(_labels(self.kind), "pending")

    def to_dict(self, since: int = 0) -> dict[str, Any]:
        """JSON form for ``GET /nb2prod/jobs/<id>``; ``since`` skips log lines already seen.

        A suggest job's answer carries ``suggestion`` (``Suggestion.to_dict()``) once done.
        """
        data = {
            "id": self.id,
            "kind": self.kind,
            "notebook": self.notebook,
            "params": self.params,
            "state": self.state,
            "stage": self.stage,
            "stages": dict(self.stages),
            "stage_labels": _labels(self.kind),
            "log": self.log[since:],
            "log_offset": since,
            "log_length": len(self.log),
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
        }
        if self.kind == "suggest":
            data["suggestion"] = self.suggestion
        return data

    def progress(self, stage: str, event: str) -> None:
        """The ``progress`` callback that ``nb2prod.build`` calls."""
        if event == "start":
            self.stage = stage
            self.stages[stage] = "running"
        elif event == "done":
            self.stages[stage] = "done"
        self.log.append(f"[{stage}] {event}")


class _JobLogHandler(logging.Handler):
    """Sends ``nb2prod`` log records to the job whose worker thread wrote them."""

    def __init__(self, registry: JobRegistry) -> None:
        super().__init__(logging.INFO)
        self.registry = registry
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        job = self.registry.job_for_thread(record.thread)
        if job is not None:
            job.log.append(self.format(record))


class JobRegistry:
    """Runs builds and suggestions in a thread pool; at most one running build, and one
    running suggestion, per notebook.

    Args:
        build: the build function, :func:`nb2prod.builder.pipeline.build` unless a test
            passes another.
        suggest: the suggest function, :func:`nb2prod.suggest.suggest` unless a test passes
            another.
        max_workers: how many jobs may run at once (for different notebooks).
    """

    def __init__(
        self,
        build: BuildFn | None = None,
        max_workers: int = 2,
        *,
        suggest: SuggestFn | None = None,
    ) -> None:
        self._build = build
        self._suggest = suggest
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="nb2prod-build")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._running: dict[str, str] = {}  # notebook key -> job id
        self._threads: dict[int, Job] = {}  # worker thread ident -> job
        self._handler = _JobLogHandler(self)
        logger = logging.getLogger("nb2prod")
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self._handler)

    def close(self) -> None:
        """Detach the log handler and stop taking work (running builds finish)."""
        logging.getLogger("nb2prod").removeHandler(self._handler)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """All remembered jobs, newest first."""
        return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def job_for_thread(self, ident: int | None) -> Job | None:
        """The job a log record belongs to: by thread, else the only running job."""
        job = self._threads.get(ident) if ident is not None else None
        if job is None and len(self._threads) == 1:
            # Records from threads the build itself starts (kernels, subprocess readers).
            job = next(iter(self._threads.values()))
        return job

    def submit(self, notebook: Path, label: str, params: dict[str, Any], out_dir: Path) -> Job:
        """Start building ``notebook``; ``label`` is how the job names it (root-relative).

        Raises:
            BuildInProgress: a build of the same notebook is still running.
        """

        def work(job: Job) -> None:
            build = self._build or run_build
            result = build(notebook, job.params or None, out_dir=out_dir, progress=job.progress)
            job.result = result.to_dict() if hasattr(result, "to_dict") else dict(result)
            job.log.append(f"Built {job.result.get('tag')}")

        busy = "A build of {label} is already running (job {job}); wait for it to finish."
        return self._start(Job(_new_id(), label, str(notebook), dict(params)), work, busy)

    def submit_suggest(
        self, notebook: Path, label: str, content: dict[str, Any] | None = None
    ) -> Job:
        """Start suggesting contract cells for ``notebook`` (``content``: the editor's copy).

        The result, ``Suggestion.to_dict()``, is the job's ``suggestion``.

        Raises:
            BuildInProgress: a suggestion for the same notebook is still being made.
        """

        def work(job: Job) -> None:
            job.progress("suggest", "start")
            suggestion = self._suggest_fn()(notebook, content)
            job.suggestion = (
                suggestion.to_dict() if hasattr(suggestion, "to_dict") else dict(suggestion)
            )
            job.progress("suggest", "done")
            job.log.append(f"Suggested {len(job.suggestion.get('cells') or [])} cell(s)")

        job = Job(_new_id(), label, f"suggest:{notebook}", {}, kind="suggest")
        busy = "A suggestion for {label} is already being made (job {job}); wait for it."
        return self._start(job, work, busy)

    def _suggest_fn(self) -> SuggestFn:
        if self._suggest is not None:
            return self._suggest
        from nb2prod.suggest import suggest  # its kernel and pandas load on first use

        return suggest

    def _start(self, job: Job, work: Callable[[Job], None], busy: str) -> Job:
        with self._lock:
            running = self._running.get(job.key)
            if running is not None:
                raise BuildInProgress(
                    busy.format(label=job.notebook, job=running), job=running, notebook=job.notebook
                )
            self._jobs[job.id] = job
            self._running[job.key] = job.id
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def _forget_old(self) -> None:
        done = [j for j in self.jobs() if j.state in TERMINAL]
        for job in done[_KEEP:]:
            del self._jobs[job.id]

    def _run(self, job: Job, work: Callable[[Job], None]) -> None:
        ident = threading.get_ident()
        self._threads[ident] = job
        job.state = "running"
        what = "Building" if job.kind == "build" else "Suggesting contract cells for"
        job.log.append(f"{what} {job.notebook}")
        state = "failed"
        try:
            work(job)
            state = "succeeded"
        except Nb2ProdError as exc:
            self._fail(job, exc.to_dict())
        except Exception as exc:  # a job must always reach a terminal state
            log.exception("nb2prod %s of %s failed unexpectedly", job.kind, job.notebook)
            where = "The build" if job.kind == "build" else "The suggestion"
            self._fail(job, InternalError.wrapping(exc, where).to_dict())
        finally:
            self._threads.pop(ident, None)
            with self._lock:
                self._running.pop(job.key, None)
            job.finished = time.time()
            # Last, so that a client that sees a terminal state may start the next job.
            job.state = state

    @staticmethod
    def _fail(job: Job, error: dict[str, Any]) -> None:
        if job.stage is not None and job.stages.get(job.stage) == "running":
            job.stages[job.stage] = "failed"
        job.error = error
        job.log.append(f"Error: {error['message']}")


def _new_id() -> str:
    return uuid.uuid4().hex[:12]
