"""What a bench run means: the ratios the targets are about, their verdicts, a table and a plot.

A ratio's key is ``metric[notebook]`` (``throughput_c32[churn]``); its target is the
metric's, so every notebook a case runs on is held to the same bound. Keys without a target
are shown for context.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks import auth, explain

TARGETS = {
    "p50_c1_compiled": ("bento p50 ÷ baseline p50 at concurrency 1, compiled runtime", "<=", 0.6),
    "p50_c1_python": ("bento p50 ÷ baseline p50 at concurrency 1, Python runtime", "<=", 1.0),
    "throughput_c32": ("bento req/s ÷ baseline req/s at concurrency 32, examples", ">=", 10.0),
    "throughput_c32_untuned": ("the same on the untuned notebook", ">=", 5.0),
    "serving_overhead_ms": ("served p50 − in-process p50 at concurrency 1, ms", "<=", 3.0),
    "check_cli_s": ("nb2prod check from process start, s (median)", "<=", 0.3),
    "check_route_ms": ("the JupyterLab check route per call, ms (median)", "<=", 50.0),
    "gate_s": ("the build's property gate, s", "<=", 15.0),
    "validation_share_1row": ("validation share of a 1-row request", "<=", 0.20),
    "rebuild_s": ("unchanged rebuild, seconds", "<=", 5.0),
    "invalid_flood_s": ("a 10,000-row all-invalid request answered, seconds", "<=", 2.0),
    "healthz_p99_during_flood_ms": ("/healthz p99 while it is validated, ms", "<=", 100.0),
    "batch_fraction_of_ceiling": (
        "nb2prod score (local) rows/s ÷ in-process features + predict, same rows",
        ">=",
        0.8,
    ),
    "batch_peak_rss_gb": ("peak RSS of nb2prod score on the 10M-row parquet, GB", "<=", 2.0),
    "auth_cost_p50_c1_ms": ("served p50, keys and limits on − off, c=1, ms", "<=", 0.3),
    "explain_p50_1row_ms": ("served 1-row /explain p50, example notebooks, ms", "<=", 100.0),
    "errors": ("errors in every case", "==", 0),
}
OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b}


def target_of(key: str) -> tuple[str, str, float] | None:
    """The target of a ratio key: that of its metric, the part before ``[notebook]``."""
    return TARGETS.get(key.split("[", 1)[0])


def _ratio(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b else float("nan")


def _get(d: dict, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def notebook_ratios(name: str, nb: dict[str, Any]) -> dict[str, float]:
    """The ratios of one notebook's cases: p50 and throughput against its baseline, the
    serving overhead and the gate's time. Cases that did not run give no key."""
    out: dict[str, float] = {}
    untuned = nb.get("untuned", False)
    servers = _get(nb, "serving", "servers") or {}
    bento, base, one = (servers.get(k, {}) for k in ("bento", "baseline", "baseline_1thread"))
    runtime = _get(nb, "bento", "runtime") or "python"
    p50 = "p50_c1_untuned" if untuned else f"p50_c1_{runtime}"
    rps = "throughput_c32_untuned" if untuned else "throughput_c32"
    if "1" in bento and "1" in base:
        out[f"{p50}[{name}]"] = _ratio(bento["1"]["p50_ms"], base["1"]["p50_ms"])
    if "32" in bento and "32" in base:
        out[f"{rps}[{name}]"] = _ratio(bento["32"]["rps"], base["32"]["rps"])
    if "1" in bento and "1" in one:
        out[f"p50_c1_vs_1thread[{name}]"] = _ratio(bento["1"]["p50_ms"], one["1"]["p50_ms"])
    if "32" in bento and "32" in one:
        out[f"throughput_c32_vs_1thread[{name}]"] = _ratio(bento["32"]["rps"], one["32"]["rps"])
    overhead = _get(nb, "serving", "overhead", "overhead_ms")
    if overhead is not None:
        out[f"serving_overhead_ms[{name}]"] = overhead
    gate = _get(nb, "build", "gate_s")
    if gate is not None:
        out[f"{'gate_s_untuned' if untuned else 'gate_s'}[{name}]"] = gate
    return out


def count_errors(r: dict[str, Any]) -> int:
    """Errors over every serving case, the validation case and the hardening checks."""
    errors = 0
    for nb in r.get("notebooks", {}).values():
        for runs in (_get(nb, "serving", "servers") or {}).values():
            errors += sum(x["errors"] for x in runs.values())
        errors += _get(nb, "serving", "overhead", "inprocess", "errors") or 0
        errors += sum(v["errors"] for v in (nb.get("validation") or {}).values())
    errors += batch_errors(r.get("batch") or {})
    errors += auth.errors(r)
    h = r.get("hardening") or {}
    if h:
        errors += h["load"]["errors"] + h["schemathesis"]["problem_count"]
        errors += h["sigterm"]["outcomes"].get("dropped", 0) + (0 if h["offline"]["ok"] else 1)
    return errors


def batch_errors(b: dict[str, Any]) -> int:
    """Batch measurements that failed, and ``nb2prod score`` runs that did not exit 0."""
    errors = sum("error" in m for m in (b.get("notebooks") or {}).values())
    return errors + sum(b[k]["exit_code"] != 0 for k in ("rss", "first_row_spark") if k in b)


def batch_ratios(b: dict[str, Any]) -> dict[str, float]:
    """The batch case's figures: the local engine against its ceiling per notebook, Spark
    against the local engine, the 10M-row run's peak RSS and the time to the first rows."""
    out: dict[str, float] = {}
    for name, m in (b.get("notebooks") or {}).items():
        if "fraction_of_ceiling" in m:
            out[f"batch_fraction_of_ceiling[{name}]"] = m["fraction_of_ceiling"]
        if "script_with_io" in m:
            script = m["script_with_io"]["rows_per_s"]
            out[f"batch_fraction_of_script_with_io[{name}]"] = m["local"]["rows_per_s"] / script
        if "spark" in m:
            out[f"spark_local2_over_local[{name}]"] = m["spark"]["spark_over_local"]
    rss = b.get("rss")
    if rss and rss.get("peak_rss_mb"):
        out["batch_peak_rss_gb"] = rss["peak_rss_mb"] / 1024
        out["batch_rows_per_s_10m"] = (rss.get("summary") or {}).get("rows_per_s", float("nan"))
    for key, run in (("local", rss), ("spark", b.get("first_row_spark"))):
        if run and run.get("first_rows_s") is not None:
            out[f"batch_first_rows_s[{key}]"] = run["first_rows_s"]
    return out


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    """Every ratio of the run, by key; a case that did not run is absent (or NaN)."""
    out: dict[str, Any] = {}
    notebooks = r.get("notebooks", {})
    for name, nb in notebooks.items():
        out.update(notebook_ratios(name, nb))
    churn = notebooks.get("churn", {})
    share = _get(churn, "validation", "1", "share")
    if share is not None:
        out["validation_share_1row"] = share
    rebuild = _get(churn, "build", "rebuild", "total_s")
    if rebuild is not None:
        out["rebuild_s"] = rebuild
    served, ceil = _get(churn, "serving", "servers", "bento", "64"), churn.get("ceiling")
    if served and ceil:
        out["served_fraction_of_ceiling_c64"] = served["rows_per_s"] / ceil["rows_per_s"]
    for name, c in (r.get("check") or {}).items():
        if isinstance(c, dict) and "cli_s" in c:
            out[f"check_cli_s[{name}]"] = c["cli_s"]["median"]
            out[f"check_route_ms[{name}]"] = c["route_ms"]["median"]
    flood = _get(r, "hardening", "invalid_flood")
    if flood:
        out["invalid_flood_s"] = flood["seconds"]
        out["healthz_p99_during_flood_ms"] = flood["healthz_p99_ms"]
    out.update(batch_ratios(r.get("batch") or {}))
    out.update(auth.ratios(r))
    out.update(explain.ratios(r))
    out["errors"] = count_errors(r)
    return out


def verdicts(values: dict[str, Any]) -> dict[str, bool]:
    """Whether each ratio with a target meets it; a NaN (not run) has no verdict."""
    out = {}
    for key, value in values.items():
        target = target_of(key)
        if target is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out[key] = OPS[target[1]](value, target[2])
    return out


def missing_runtimes(r: dict[str, Any]) -> list[str]:
    """The runtimes with a p50 target that no example notebook (of those run) served with."""
    if not any(not nb.get("untuned") for nb in r.get("notebooks", {}).values()):
        return []  # no example notebook ran: nothing is missing
    served = {k.split("[")[0] for k in r.get("ratios", {})}
    return [t for t in ("p50_c1_compiled", "p50_c1_python") if t not in served]


def batch_lines(b: dict[str, Any]) -> list[str]:
    """One line per batch measurement: rows/s of each engine and of the ceiling."""
    lines = []
    for name, m in (b.get("notebooks") or {}).items():
        if "local" not in m:
            continue
        lines.append(
            f"batch {name}: local engine {m['local']['rows_per_s']:,.0f} rows/s, ceiling "
            f"{m['ceiling']['rows_per_s']:,.0f} rows/s"
            + (
                f", script with I/O {m['script_with_io']['rows_per_s']:,.0f} rows/s"
                if "script_with_io" in m
                else ""
            )
            + f" over {m['rows']:,} rows"
        )
        if "spark" in m:
            s = m["spark"]
            lines.append(
                f"batch {name}: spark {s['master']} {s['spark']['rows_per_s']:,.0f} rows/s, "
                f"local {s['local']['rows_per_s']:,.0f} rows/s over {s['rows']:,} rows"
            )
    rss = b.get("rss")
    if rss:
        lines.append(
            f"batch {rss['rows']:,} rows: peak RSS {rss['peak_rss_mb']:,.0f} MB, whole run "
            f"{rss['output_s']:.1f} s"
        )
    return lines


def _serving_table(r: dict[str, Any]) -> list[str]:
    lines = [
        "| notebook | runtime | server | concurrency | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, nb in r.get("notebooks", {}).items():
        runtime = _get(nb, "bento", "runtime") or ""
        for server, runs in (_get(nb, "serving", "servers") or {}).items():
            for c, x in runs.items():
                lines.append(
                    f"| {name} | {runtime if server == 'bento' else ''} | {server} | {c} | "
                    f"{x['rps']:.1f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['errors']} |"
                )
        o = _get(nb, "serving", "overhead")
        if o:
            lines.append(
                f"| {name} | {runtime} | in-process | 1 | | {o['inprocess_p50_ms']:.1f} | "
                f"{o['inprocess']['p99_ms']:.1f} | {o['inprocess']['errors']} |"
            )
    return lines


def table(r: dict[str, Any]) -> str:
    """The run as Markdown: serving, validation, builds, then every ratio against its target."""
    lines = _serving_table(r) if r.get("notebooks") else []
    churn = r.get("notebooks", {}).get("churn", {})
    if churn.get("validation"):
        lines += [
            "",
            "| validation rows | fast path ms | Pandera ms | request p50 ms | share |",
            "|---:|---:|---:|---:|---:|",
        ]
        for size, v in churn["validation"].items():
            lines.append(
                f"| {size} | {v['validate_ms']:.2f} | {v['pandera_ms']:.2f} | "
                f"{v['request_p50_ms']:.1f} | {v['share']:.1%} |"
            )
    lines.append("")
    for name, nb in r.get("notebooks", {}).items():
        b = nb.get("build")
        if not b:
            continue
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in b["cold"]["stages_s"].items())
        line = f"{name}: cold build {b['cold']['total_s']:.1f} s ({stages})"
        if "rebuild" in b:
            rb = b["rebuild"]
            line += f"; unchanged rebuild {rb['total_s']:.2f} s (cache hit: {rb['cached']})"
        reason = _get(nb, "bento", "serving", "reason")
        runtime = _get(nb, "bento", "runtime")
        lines.append(line + f"; serves {runtime}" + (f" ({reason})" if reason else ""))
    if churn.get("ceiling"):
        ceil = churn["ceiling"]
        lines.append(
            f"ceiling: features + predict in-process, {ceil['rows_per_s']:.0f} rows/s "
            f"({ceil['batch_rows']}-row batches)"
        )
    lines += batch_lines(r.get("batch") or {})
    lines += auth.lines(r)
    check = r.get("check") or {}
    if "not available" in check:
        lines.append(f"check timing: not available ({check['not available']})")
    for name in missing_runtimes(r):
        lines.append(f"{name}: not measured, no example notebook was served with that runtime")
    lines += ["", "| ratio | value | target | holds |", "|---|---:|---:|---|"]
    for key, value in r["ratios"].items():
        target = target_of(key)
        bound = f"{target[1]} {target[2]}" if target else ""
        held = {True: "yes", False: "**no**"}.get(r["verdicts"].get(key), "")
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} | {bound} | {held} |")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path, concurrency: tuple[int, ...]) -> None:
    """The example's req/s and p50 by concurrency, and every notebook's ratios at 1 and 32."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(15, 4))
    churn = _get(r, "notebooks", "churn", "serving", "servers") or {}
    for name, runs in churn.items():
        cs = [int(c) for c in runs]
        left.plot(cs, [runs[c]["rps"] for c in runs], marker="o", label=name)
        mid.plot(cs, [runs[c]["p50_ms"] for c in runs], marker="o", label=name)
    for ax, label in ((left, "churn: requests/s (1 row each)"), (mid, "churn: p50 latency, ms")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(concurrency), [str(c) for c in concurrency])
        ax.set_xlabel("concurrency")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if churn:
        left.legend()
    names, p50s, rps = [], [], []
    for name, nb in r.get("notebooks", {}).items():
        ratio = notebook_ratios(name, nb)
        p50 = [v for k, v in ratio.items() if k.startswith("p50_c1_") and "1thread" not in k]
        thr = [v for k, v in ratio.items() if k.startswith("throughput_c32") and "1thread" not in k]
        if p50 and thr:
            names.append(f"{name}\n({_get(nb, 'bento', 'runtime')})")
            p50s.append(p50[0])
            rps.append(thr[0])
    xs = range(len(names))
    # Bars grow from 1 (as fast as the baseline), up or down, on a log scale.
    right.bar(
        [x - 0.2 for x in xs],
        [v - 1 for v in p50s],
        0.4,
        bottom=1,
        label="p50 at c=1 ÷ baseline (lower is better)",
    )
    right.bar(
        [x + 0.2 for x in xs],
        [v - 1 for v in rps],
        0.4,
        bottom=1,
        label="req/s at c=32 ÷ baseline (higher is better)",
    )
    right.axhline(1.0, color="grey", lw=0.8)
    right.set_xticks(list(xs), names)
    right.set_yscale("log")
    right.set_ylabel("ratio to the FastAPI + joblib baseline")
    right.legend(fontsize=8)
    fig.suptitle(f"bentos vs FastAPI + joblib baseline, one run on loopback ({r['when']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
