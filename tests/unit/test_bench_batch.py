"""The bench's batch case: its generated input, and the figures and verdicts it reports."""

from pathlib import Path

import pytest

from benchmarks import batch
from benchmarks.__main__ import cases_of
from benchmarks.report import batch_lines, ratios, verdicts


def test_the_input_is_drawn_from_the_reference_in_chunks_and_row_groups(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Given a reference table and small chunks, so that several are written
    reference = tmp_path / "reference.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3], "s": ["a", None, "c"]}), reference)
    monkeypatch.setattr(batch, "CHUNK", 40)
    monkeypatch.setattr(batch, "ROW_GROUP", 15)

    # When 100 rows are made
    out = batch.make_input(reference, tmp_path / "input.parquet", 100)

    # Then ids run 0..99, every row is a reference row, and the file has several row groups
    file = pq.ParquetFile(out)
    table = file.read()
    assert table.column_names == ["id", "x", "s"]
    assert table.column("id").to_pylist() == list(range(100))
    pairs = set(zip(table.column("x").to_pylist(), table.column("s").to_pylist(), strict=True))
    assert pairs <= {(1, "a"), (2, None), (3, "c")} and len(pairs) > 1
    assert file.metadata.num_row_groups == 8  # chunks of 40, 40, 20 rows: 3 + 3 + 2 groups


def measured(fraction: float, spark: bool = False) -> dict:
    m = {
        "rows": 1000,
        "local": {"rows_per_s": 800.0 * fraction / 0.8},
        "ceiling": {"rows_per_s": 1000.0},
        "fraction_of_ceiling": fraction,
    }
    if spark:
        m["spark"] = {
            "master": "local[2]",
            "rows": 1000,
            "spark": {"rows_per_s": 250.0},
            "local": {"rows_per_s": 1000.0},
            "spark_over_local": 0.25,
        }
    return m


def test_batch_figures_are_held_to_their_targets_and_failed_runs_are_errors() -> None:
    # Given a batch case where churn meets the ceiling target, bookings does not, a failed
    # measurement for diabetes and a Spark run that exited 1
    b = {
        "notebooks": {
            "churn": measured(0.9, spark=True),
            "bookings": measured(0.5),
            "diabetes": {"error": "exit 1", "stderr": "boom"},
        },
        "rss": {
            "rows": 10_000_000,
            "peak_rss_mb": 1536.0,
            "first_rows_s": 2.5,
            "output_s": 90.0,
            "exit_code": 0,
            "summary": {"rows_per_s": 111_111.0},
        },
        "first_row_spark": {"first_rows_s": 30.0, "output_s": 31.0, "exit_code": 1},
    }

    # When its ratios and verdicts are taken
    out = ratios({"batch": b})
    held = verdicts(out)

    # Then each figure is there, held to its bound, and the two failures count as errors
    assert held["batch_fraction_of_ceiling[churn]"] is True
    assert held["batch_fraction_of_ceiling[bookings]"] is False
    assert "batch_fraction_of_ceiling[diabetes]" not in out
    assert out["spark_local2_over_local[churn]"] == 0.25
    assert out["batch_peak_rss_gb"] == pytest.approx(1.5) and held["batch_peak_rss_gb"] is True
    assert out["batch_first_rows_s[local]"] == 2.5 and out["batch_first_rows_s[spark]"] == 30.0
    assert out["errors"] == 2 and held["errors"] is False
    assert any("peak RSS 1,536 MB" in line for line in batch_lines(b))


def test_the_batch_case_runs_alone_or_with_the_rest() -> None:
    assert cases_of("batch") == ["batch"]
    assert "batch" in cases_of(None)
    assert Path(batch.__file__).name == "batch.py"
