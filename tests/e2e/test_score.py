"""End to end: ``nb2prod score`` (the real CLI, a subprocess) answers every row as the served
bento's ``POST /predict`` does, on both examples; bad rows land in the rejects file with
their 422's failures; a killed run leaves no output. No extra build: the session's two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.support import BIN, churn_rows, records, serve

pytestmark = pytest.mark.e2e
REQUEST_ROWS = 200


def planted(example: str, built: Any) -> tuple[pd.DataFrame, dict[int, dict[str, Any]]]:
    """The example's rows (churn: fresh ones, nulls where its schema allows them), with bad
    rows planted in the middle: {position: the bad values}."""
    if example == "churn":
        rows = churn_rows(1500, 41).drop(columns=["churned"])
        bad = {
            300: {"tenure_months": -4},
            301: {"contract": "weekly"},
            900: {"support_calls": None},
        }
    else:
        rows = built.reference().reset_index(drop=True)
        bad = {30: {"bmi": 5.0}, 31: {"sex": 3.0}, 200: {"age": None}}
    for at, values in bad.items():
        for column, value in values.items():
            if value is None and pd.api.types.is_integer_dtype(rows[column]):
                rows[column] = rows[column].astype("Int64")  # a null in an int column
            rows.at[at, column] = value
    return rows, bad


def nb2prod_score(*args: object, **popen: Any) -> Any:
    command = [str(BIN / "nb2prod"), "score", *map(str, args)]
    if popen:
        return subprocess.Popen(command, **popen)
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def served_answers(base: str, rows: pd.DataFrame, proba: bool) -> tuple[list, list]:
    """``/predict`` (and ``/predict_proba``) on ``rows``, in requests of REQUEST_ROWS."""
    import httpx

    predictions, probabilities = [], []
    with httpx.Client(base_url=base, timeout=120) as client:
        for start in range(0, len(rows), REQUEST_ROWS):
            body = {"rows": records(rows.iloc[start : start + REQUEST_ROWS])}
            answer = client.post("/predict", json=body)
            assert answer.status_code == 200, answer.text
            predictions += answer.json()["predictions"]
            if proba:
                answer = client.post("/predict_proba", json=body)
                assert answer.status_code == 200, answer.text
                probabilities += answer.json()["probabilities"]
    return predictions, probabilities


@pytest.mark.parametrize("example", ["churn", "diabetes"])
def test_score_answers_as_the_served_bento_and_rejects_the_planted_rows(
    example: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import httpx

    built = request.getfixturevalue(example)
    rows, bad = planted(example, built)
    rows.to_parquet(tmp_path / "data.parquet", index=False)
    proba = example == "churn"
    # When the table is scored by the CLI, in batches smaller than the table
    flags = ["--batch-rows", "512", *(["--proba"] if proba else [])]
    done = nb2prod_score(built.tag, tmp_path / "data.parquet", tmp_path / "out.parquet", *flags)
    # Then the run exits 1 (rows were rejected, past the default --max-reject-rate 0) and
    # its summary counts every row
    assert done.returncode == 1, done.stderr
    assert f"rows in   {len(rows):,}" in done.stdout and "rejected  3 " in done.stdout
    out = pd.read_parquet(tmp_path / "out.parquet")
    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert len(out) + len(rejects) == len(rows) and list(rejects["row"]) == sorted(bad)
    good = rows.drop(index=list(bad))
    pd.testing.assert_frame_equal(
        out[list(rows.columns)], good.reset_index(drop=True), check_dtype=False
    )
    # and each answer is the served bento's, row for row; each reject's failures are the
    # 422 that row gets alone
    with serve(built.tag) as base:
        predictions, probabilities = served_answers(base, good, proba)
        with httpx.Client(base_url=base, timeout=60) as client:
            alone = [client.post("/predict", json={"rows": records(rows.iloc[[at]])}) for at in bad]
    assert out["prediction"].tolist() == predictions
    if proba:
        assert np.array_equal(out[["proba_0", "proba_1"]].to_numpy(), np.asarray(probabilities))
    assert [a.status_code for a in alone] == [422] * len(bad)
    assert [json.loads(f) for f in rejects["failures"]] == [a.json()["failures"] for a in alone]
    assert set(rejects["status"]) == {422}
    assert set(out["model_version"]) == {built.manifest["version"]}


def test_a_killed_run_leaves_no_output(churn: Any, tmp_path: Path) -> None:
    # Given a biggish table, scored in small batches
    churn_rows(300_000, 5).drop(columns=["churned"]).to_parquet(tmp_path / "big.parquet")
    out = tmp_path / "out.parquet"
    for sig in (signal.SIGKILL, signal.SIGTERM):
        run = nb2prod_score(
            churn.tag, tmp_path / "big.parquet", out, "--batch-rows", "2000",
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        # When it is killed while it writes
        deadline = time.monotonic() + 120
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".out.parquet.")]:
            assert run.poll() is None, run.stderr.read().decode()
            assert time.monotonic() < deadline, "no temporary output after 120 s"
            time.sleep(0.05)
        time.sleep(0.3)  # some batches written
        os.kill(run.pid, sig)
        run.wait(timeout=60)
        run.stderr.close()
        # Then there is no output (nor rejects file) that looks complete; SIGTERM also
        # removes the hidden temporary files, SIGKILL leaves only them
        names = sorted(p.name for p in tmp_path.iterdir() if p.name != "big.parquet")
        assert not out.exists() and not (tmp_path / "out.rejects.parquet").exists()
        if sig == signal.SIGTERM:
            assert run.returncode == 128 + signal.SIGTERM and names == []
        else:
            assert names and all(n.startswith(".out.") and n.endswith(".tmp") for n in names)
            for name in names:
                (tmp_path / name).unlink()
