"""The bench's ratios: each notebook's keys, the target each key is held to, and the verdicts."""

import math

import pytest

from benchmarks.__main__ import cases_of
from benchmarks.build import runtime_of
from benchmarks.load import LoadResult
from benchmarks.report import (
    TARGETS,
    missing_runtimes,
    notebook_ratios,
    ratios,
    target_of,
    verdicts,
)
from benchmarks.serving import overhead, requests_for, side_by_side


def run(rps: float, p50: float, errors: int = 0) -> dict:
    return {"rps": rps, "p50_ms": p50, "p99_ms": 2 * p50, "errors": errors, "rows_per_s": rps}


def notebook(runtime: str | None, *, untuned: bool = False, one_thread: bool = False) -> dict:
    servers = {
        "bento": {"1": run(50, 10.0), "32": run(300, 100.0)},
        "baseline": {"1": run(40, 20.0), "32": run(25, 1200.0)},
    }
    if one_thread:
        servers["baseline_1thread"] = {"1": run(40, 16.0), "32": run(30, 1000.0)}
    bento = {"tag": "x:1", "runtime": runtime} if runtime else {"tag": "x:1"}
    return {
        "untuned": untuned,
        "bento": bento,
        "build": {"cold": {"total_s": 60, "stages_s": {"test": 12.5}}, "gate_s": 12.5},
        "serving": {
            "servers": servers,
            "overhead": {"overhead_ms": 2.5, "inprocess": {"errors": 0}},
        },
    }


def test_a_notebooks_keys_name_its_runtime_and_take_that_runtimes_target() -> None:
    out = notebook_ratios("diabetes", notebook("compiled"))
    assert out["p50_c1_compiled[diabetes]"] == pytest.approx(0.5)
    assert out["throughput_c32[diabetes]"] == pytest.approx(12.0)
    assert out["serving_overhead_ms[diabetes]"] == 2.5
    assert out["gate_s[diabetes]"] == 12.5
    assert target_of("p50_c1_compiled[diabetes]") == TARGETS["p50_c1_compiled"]
    assert target_of("p50_c1_python[churn]")[1:] == ("<=", 1.0)
    assert target_of("p50_c1_compiled[x]")[1:] == ("<=", 0.6)
    assert target_of("throughput_c32_untuned[bookings]")[1:] == (">=", 5.0)
    assert target_of("throughput_c32[churn]")[1:] == (">=", 10.0)
    assert target_of("p50_c1_vs_1thread[churn]") is None


def test_the_untuned_notebook_is_held_to_its_own_throughput_bound_and_no_p50_or_gate_one() -> None:
    out = notebook_ratios("bookings", notebook("python", untuned=True))
    assert set(out) == {
        "p50_c1_untuned[bookings]",
        "throughput_c32_untuned[bookings]",
        "serving_overhead_ms[bookings]",
        "gate_s_untuned[bookings]",
    }
    held = verdicts(out)
    assert held == {"throughput_c32_untuned[bookings]": True, "serving_overhead_ms[bookings]": True}


def test_a_manifest_without_a_serving_runtime_counts_as_python() -> None:
    assert runtime_of({}) == "python"
    assert runtime_of({"serving": {"runtime": "compiled", "reason": None}}) == "compiled"
    assert runtime_of({"serving": "odd"}) == "python"
    assert "p50_c1_python[churn]" in notebook_ratios("churn", notebook(None))


def test_verdicts_follow_each_bound_and_leave_out_what_did_not_run() -> None:
    values = {
        "p50_c1_python[churn]": 1.2,
        "p50_c1_compiled[diabetes]": 0.55,
        "throughput_c32[churn]": 9.9,
        "check_cli_s[churn]": 0.29,
        "check_route_ms[churn]": float("nan"),
        "served_fraction_of_ceiling_c64": 0.01,
        "errors": 0,
    }
    assert verdicts(values) == {
        "p50_c1_python[churn]": False,
        "p50_c1_compiled[diabetes]": True,
        "throughput_c32[churn]": False,
        "check_cli_s[churn]": True,
        "errors": True,
    }


def test_the_run_ratios_gather_every_notebook_check_timing_and_errors() -> None:
    churn = notebook("python", one_thread=True)
    churn["serving"]["servers"]["bento"]["1"]["errors"] = 2
    r = {
        "notebooks": {"churn": churn, "diabetes": notebook("compiled")},
        "check": {
            "churn": {"cli_s": {"median": 0.4}, "route_ms": {"median": 8.0}},
            "diabetes": {"error": "boom"},
        },
    }
    out = ratios(r)
    assert out["p50_c1_vs_1thread[churn]"] == pytest.approx(10.0 / 16.0)
    assert out["check_cli_s[churn]"] == 0.4 and out["check_route_ms[churn]"] == 8.0
    assert "check_cli_s[diabetes]" not in out
    assert out["errors"] == 2
    assert missing_runtimes({**r, "ratios": out}) == []
    only_python = {"notebooks": {"churn": churn}}
    assert missing_runtimes({**only_python, "ratios": ratios(only_python)}) == ["p50_c1_compiled"]
    untuned = {"notebooks": {"bookings": notebook("python", untuned=True)}}
    assert missing_runtimes({**untuned, "ratios": ratios(untuned)}) == []


def test_rounds_alternate_and_merge_per_participant() -> None:
    order = []

    def runner(name: str, ms: float):
        def go(n: int) -> LoadResult:
            order.append(name)
            return LoadResult(n, 1, 1, n * ms / 1000, {"200": n}, 0, ms, ms, [ms] * n)

        return go

    merged = side_by_side({"a": runner("a", 1.0), "b": runner("b", 3.0)}, requests=10, rounds=5)
    assert order == ["a", "b"] * 5
    assert merged["a"].requests == 10 and merged["b"].p50_ms == 3.0
    assert overhead(merged["b"], merged["a"])["overhead_ms"] == pytest.approx(2.0)
    assert requests_for(1, 0.1) == 60 and requests_for(32, 0.1, above=1000) == 100
    assert requests_for(32, 0.01) == 50


def test_cases_are_picked_by_name_and_hardening_brings_the_churn_case() -> None:
    assert cases_of("hardening") == ["churn", "hardening"]
    assert cases_of("untuned, check") == ["untuned", "check"]
    assert "hardening" not in cases_of(None, hardening=False)
    with pytest.raises(SystemExit, match="unknown case"):
        cases_of("serving")
    assert math.isnan(
        notebook_ratios(
            "x", {"serving": {"servers": {"bento": {"1": run(1, 1)}, "baseline": {"1": run(1, 0)}}}}
        )["p50_c1_python[x]"]
    )


def test_with_runtime_copies_the_notebook_with_the_setting(tmp_path) -> None:
    import json

    from benchmarks.build import NOTEBOOKS, with_runtime

    before = NOTEBOOKS["churn"].read_bytes()
    copy = with_runtime(NOTEBOOKS["churn"], "python", "churn-python", tmp_path)
    settings = json.loads(copy.read_text())["metadata"]["nb2prod"]
    assert settings["serving"]["runtime"] == "python" and settings["name"] == "churn-python"
    assert NOTEBOOKS["churn"].read_bytes() == before
    from nb2prod.notebook.check import check

    assert check(copy).ok
