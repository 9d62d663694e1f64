"""End to end: each example notebook builds, `bentoml serve` answers like the notebook did."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from nb2prod.notebook.read import EXPLAIN_MAX_ROWS
from tests.support import FIXTURES, Built, records, serve

pytestmark = pytest.mark.e2e


def _predict(base: str, rows: list[dict], route: str = "predict") -> httpx.Response:
    return httpx.post(f"{base}/{route}", json={"rows": rows}, timeout=60)


def _assert_same(got: list, expected: np.ndarray) -> None:
    got_array = np.asarray(got)
    if np.issubdtype(expected.dtype, np.floating):
        np.testing.assert_allclose(got_array, expected, rtol=1e-9, atol=1e-12)
    else:
        assert got_array.tolist() == expected.tolist()


@pytest.mark.parametrize("example", ["churn", "diabetes"])
def test_served_predictions_equal_the_notebooks(
    example: str, request: pytest.FixtureRequest
) -> None:
    built: Built = request.getfixturevalue(example)
    reference = built.reference().head(300)
    expected = built.notebook_predictions()["prediction"].to_numpy()[:300]
    rows = records(reference)
    # the explainer warms at start (the default), beside the requests below
    with serve(built.tag, env={"NB2PROD_EXPLAIN_WARM": "1"}) as base:
        # one batch
        batch = _predict(base, rows)
        assert batch.status_code == 200, batch.text
        body = batch.json()
        assert body["model_version"] == built.manifest["version"]
        _assert_same(body["predictions"], expected)
        # one row per request, including rows with nulls where the schema allows them
        singles = [_predict(base, [row]).json()["predictions"][0] for row in rows[:25]]
        _assert_same(singles, expected[:25])
        # /metadata carries the manifest and the input schema
        meta = httpx.post(f"{base}/metadata", timeout=30).json()
        assert meta["manifest"]["notebook_sha256"] == built.manifest["notebook_sha256"]
        assert set(meta["input_schema"]["properties"]) >= set(reference.columns)
        # one row object, as /predict takes them in {"rows": [...]}: not Pandera's columns
        first = meta["input_schema"]["properties"][reference.columns[0]]
        assert first["type"] in ("number", "integer", ["number", "null"], ["integer", "null"])
        items = meta["request_schema"]["properties"]["rows"]["items"]
        assert items["properties"] == meta["input_schema"]["properties"]
        # /explain: per row the prediction, and attributions over the input columns that add
        # up to the explained output minus the base value
        explained = _predict(base, rows[:3], "explain")
        assert explained.status_code == 200, explained.text
        found = explained.json()["explanations"]
        _assert_same([e["prediction"] for e in found], expected[:3])
        for e in found:
            assert list(e["attributions"]) == list(reference.columns)
            assert abs(sum(e["attributions"].values()) - (e["output"] - e["base_value"])) < 1e-6
        assert len({e["base_value"] for e in found}) == 1
        # a bad row: /predict's 422 body; one row past the cap: 413 naming it
        bad = [dict(rows[0], **{str(reference.columns[0]): "not a number"})]
        refused, predicted = _predict(base, bad, "explain"), _predict(base, bad)
        assert (refused.status_code, refused.json()) == (422, predicted.json())
        over = _predict(base, rows[: EXPLAIN_MAX_ROWS + 1], "explain")
        assert over.status_code == 413 and over.json()["max_rows"] == EXPLAIN_MAX_ROWS


def test_null_in_a_one_row_request_is_accepted(churn: Built) -> None:
    reference = churn.reference()
    nulls = reference[reference["monthly_charges"].isna() & reference["payment_method"].isna()]
    if nulls.empty:  # build the row from two partial ones; the data has both kinds of nulls
        nulls = reference.head(1).assign(monthly_charges=None, payment_method=None)
    row = records(nulls.head(1))
    assert row[0]["monthly_charges"] is None and row[0]["payment_method"] is None
    with serve(churn.tag) as base:
        response = _predict(base, row)
        proba = _predict(base, row, "predict_proba")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] in (0, 1)
    assert proba.status_code == 200
    assert np.isclose(sum(proba.json()["probabilities"][0]), 1.0)
    assert proba.json()["classes"] == [0, 1]


def test_invalid_rows_get_422_naming_row_and_column(churn: Built) -> None:
    good = records(churn.reference().head(3))
    missing = [{k: v for k, v in good[0].items() if k != "support_calls"}]
    wrong_type = [dict(good[0], tenure_months="twelve")]
    out_of_range = [dict(good[0], tenure_months=-4)]
    mixed = [good[0], dict(good[1], contract="weekly"), good[2], dict(good[2], support_calls=-1)]
    with serve(churn.tag) as base:
        answers = {
            name: _predict(base, rows)
            for name, rows in [
                ("missing", missing),
                ("wrong_type", wrong_type),
                ("out_of_range", out_of_range),
                ("mixed", mixed),
            ]
        }
        not_rows = httpx.post(f"{base}/predict", json={"rows": [1, 2]}, timeout=30)
        not_json = httpx.post(
            f"{base}/predict",
            content=b"{",
            headers={"content-type": "application/json"},
            timeout=30,
        )
    for response in answers.values():
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert "nothing was predicted" in response.json()["error"]
    failures = {
        k: [(f["row"], f["column"], f["check"]) for f in r.json()["failures"]]
        for k, r in answers.items()
    }
    assert failures["missing"] == [(None, "support_calls", "column_in_dataframe")]
    # a string in a number column is refused before coercion, saying why
    assert failures["wrong_type"] == [
        (0, "tenure_months", "lossless_coercion('int64'): a string is not a number")
    ]
    assert failures["out_of_range"] == [(0, "tenure_months", "greater_than_or_equal_to(0)")]
    # the batch is rejected whole, and every bad row is listed
    assert sorted((row, col) for row, col, _ in failures["mixed"]) == [
        (1, "contract"),
        (3, "support_calls"),
    ]
    assert answers["mixed"].json()["failures"][0]["value"] == "weekly"
    for response in (not_rows, not_json):
        assert 400 <= response.status_code < 500


def test_contract_notebook_builds_and_serves(tmp_path: Path) -> None:
    # Written to the contract by someone else: #| roles, no features cell, a skip cell that raises.
    from nb2prod.builder.pipeline import build

    result = build(FIXTURES / "contract" / "wine.ipynb", out_dir=tmp_path)
    assert result.tag.startswith("wine-cultivar:")
    built = Built(result)
    rows = records(built.reference().head(40))
    expected = built.notebook_predictions()["prediction"].to_numpy()[:40]
    assert result.bento_path.exists()
    with serve(result.tag) as base:
        response = _predict(base, rows)
        extra = _predict(base, [dict(rows[0], vintage=1999)])
    assert response.status_code == 200, response.text
    _assert_same(response.json()["predictions"], expected)
    assert extra.status_code == 422  # strict schema: unknown columns are refused
    assert extra.json()["failures"][0]["column"] == "vintage"
    assert json.loads((result.build_dir / "src" / "nb2prod.json").read_text())["entrypoint"] is None
