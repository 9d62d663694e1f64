"""Writes each generated test's result as JSON when NB2PROD_TEST_RESULTS names a file.

`nb2prod build` and `nb2prod test` read it to name the failed property, its smallest
falsifying frame and how to replay it. A plain pytest run is unaffected. This module is copied
into every bento as ``tests/conftest.py``.

The file is ``{"exitstatus": int, "results": [result, ...]}``; each result has ``test``,
``doc``, ``outcome`` and ``when``, and a failure also ``error``, ``frame`` (the falsifying frame
Hypothesis printed), ``reproduce`` (its ``@reproduce_failure`` line), ``lifted`` (the
``{file, line}`` frames in lifted code) and ``traceback``.
"""

from __future__ import annotations

import json
import os
import re

import pytest

# The tests feed the model frames of a few rows, thousands of times: thread pools cost more
# than they give there (HistGradientBoosting's predict took ten times the CPU with them).
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

RESULTS_ENV = "NB2PROD_TEST_RESULTS"
RESULTS = os.environ.get(RESULTS_ENV)
BLOB = re.compile(r"@reproduce_failure\([^)]*\)")
results: list[dict] = []


def _lifted_frames(excinfo) -> list[dict]:
    """Where the error passed through lifted code, innermost last."""
    return [
        {"file": str(entry.path), "line": entry.lineno + 1}
        for entry in excinfo.traceback
        if "lifted" in str(entry.path)
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not RESULTS or (report.when != "call" and not (report.failed or report.skipped)):
        return
    doc = (getattr(item.function, "__doc__", None) or item.name).strip().splitlines()[0]
    result = {"test": item.name, "doc": doc, "outcome": report.outcome, "when": report.when}
    if report.skipped and call.excinfo is not None:
        result["reason"] = str(call.excinfo.value)
    if report.failed and call.excinfo is not None:
        error = call.excinfo.value
        # Hypothesis raises a group when it finds distinct failures; report the first.
        first = (getattr(error, "exceptions", None) or [error])[0]
        notes = [str(n) for e in (error, first) for n in getattr(e, "__notes__", [])]
        frames = [n for n in notes if n.startswith("input frame")]
        blobs = [m.group(0) for n in notes for m in BLOB.finditer(n)]
        result.update(
            error=f"{type(first).__name__}: {str(first).strip()}",
            frame=frames[-1] if frames else None,
            reproduce=blobs[-1] if blobs else None,
            lifted=_lifted_frames(call.excinfo),
            traceback=report.longreprtext[-6000:],
        )
    results.append(result)


def pytest_collection_modifyitems(items):
    """The properties first, then the parity test: a failed property explains a parity mismatch
    (an unseeded random entry point also makes the lifted predictions differ from the
    notebook's), so the report leads with the cause."""
    items.sort(key=lambda item: item.path.name == "test_parity.py")


def pytest_collectreport(report):
    if RESULTS and report.failed:
        results.append(
            {
                "test": report.nodeid or "collection",
                "doc": "the generated tests could not be loaded",
                "outcome": "error",
                "when": "collect",
                "error": report.longreprtext[-6000:],
            }
        )


def pytest_sessionfinish(session, exitstatus):
    if RESULTS:
        with open(RESULTS, "w", encoding="utf-8") as fh:
            json.dump(
                {"exitstatus": int(exitstatus), "results": results}, fh, indent=1, default=str
            )
