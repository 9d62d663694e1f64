"""What the CLI prints: the build summary stays one line per row when it is not a terminal."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nb2prod.builder.pipeline import BuildResult
from nb2prod.console import console, print_build


def summary(result: BuildResult) -> list[str]:
    """The summary as the CLI prints it to captured (not a terminal) output, as lines."""
    runner = CliRunner()
    with runner.isolation() as (stdout, *_):
        print_build(console(), result)
        return stdout.getvalue().decode().splitlines()


def long_result(tmp_path: Path, **fields) -> BuildResult:
    name = "customer_lifetime_value_with_regional_seasonality_v2"  # near BentoML's 63
    deep = tmp_path / "a folder with [brackets]" / ("nested-" * 8)
    return BuildResult(
        tag=f"{name}:0123456789ab",
        version="0123456789ab",
        metrics={"roc_auc[test]": 0.91234},
        bento_path=deep / f"{name}-0123456789ab.bento",
        build_dir=deep / f"{name}-0123456789ab",
        gates=[{"metric": "roc_auc[test]", "bound": ">= 0.8"}],
        **fields,
    )


def test_no_summary_line_wraps_when_output_is_not_a_terminal(tmp_path) -> None:
    result = long_result(tmp_path)
    lines = summary(result)
    assert len(result.serve_command) > 80 and len(str(result.bento_path)) > 80
    assert lines == [
        f"bento                 {result.tag}",
        "metric roc_auc[test]  0.9123  gate >= 0.8 passed",
        f"file                  {result.bento_path}",
        f"sources               {result.build_dir / 'src'}",
        f"serve                 {result.serve_command}",
    ]


def test_the_summary_says_in_one_sentence_when_the_cache_is_off(tmp_path) -> None:
    why = "its training run read from the network (socket.connect to db.example.com:5432)"
    lines = summary(long_result(tmp_path, cache_off=why))
    assert lines[-1] == f"cache off for this notebook: {why}"
    assert sum("cache" in line for line in lines) == 1
