"""Per-row explanations (``nb2prod.serving.explain``): additivity, ignored columns, codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nb2prod.notebook.read import EXPLAIN_MAX_ROWS, parse
from nb2prod.serving.explain import Codes, Explainer, answer, background

PLANS = ["basic", "plus", "pro", None]
COLUMNS = ["tenure", "charges", "plan", "calls", "note"]  # the model never reads "note"


def frame_of(rows: list[dict]) -> pd.DataFrame:
    """Rows typed as a validated request is: float, nullable int, string with nulls."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype(
        {"tenure": "float64", "charges": "float64", "plan": "object", "calls": "Int64"}
    ).astype({"note": "object"})


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, object]:
    """A real pipeline over mixed columns with nulls: impute, one-hot, gradient boosting."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    n = 300
    train = frame_of(
        [
            {
                "tenure": float(rng.integers(0, 72)),
                "charges": None if rng.random() < 0.1 else float(rng.uniform(10, 120)),
                "plan": PLANS[rng.integers(0, 4)],
                "calls": None if rng.random() < 0.1 else int(rng.integers(0, 9)),
                "note": str(rng.integers(0, 5)),
            }
            for _ in range(n)
        ]
    )
    y = (train["tenure"] < 20) ^ (train["plan"].fillna("none") == "pro")
    numeric = ["tenure", "charges", "calls"]
    prepare = ColumnTransformer(
        [
            ("num", SimpleImputer(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    model = Pipeline(
        [("prep", prepare), ("gbm", HistGradientBoostingClassifier(max_iter=20, random_state=0))]
    )
    features = train.assign(
        calls=train["calls"].astype("float64"), plan=train["plan"].fillna("none")
    )
    model.fit(features, y)
    return train, model


def output_of(model: object):
    from threadpoolctl import threadpool_limits

    def output(frame: pd.DataFrame) -> np.ndarray:
        # the lifted features: the string column's null becomes a category of its own
        features = frame.assign(
            calls=frame["calls"].astype("float64"), plan=frame["plan"].fillna("none")
        )
        with threadpool_limits(1):  # as the service runs it: OpenMP threads only contend
            return model.predict_proba(features)[:, 1]

    return output


@pytest.fixture(scope="module")
def explainer(fitted: tuple[pd.DataFrame, object]) -> Explainer:
    train, model = fitted
    return Explainer(background(train), output_of(model))


rows = st.fixed_dictionaries(
    {
        "tenure": st.integers(0, 72).map(float),
        "charges": st.none() | st.floats(10, 120),
        "plan": st.sampled_from(PLANS),
        "calls": st.none() | st.integers(0, 8),
        "note": st.text(max_size=3),
    }
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(given_rows=st.lists(rows, min_size=1, max_size=2))
def test_attributions_add_up_and_an_ignored_column_gets_zero(
    explainer: Explainer, fitted: tuple[pd.DataFrame, object], given_rows: list[dict]
) -> None:
    frame = frame_of(given_rows)
    outputs, bases, values = explainer.explain(frame)
    assert values.shape == (len(frame), len(COLUMNS), 1)
    np.testing.assert_allclose(outputs[:, 0], output_of(fitted[1])(frame), rtol=0, atol=1e-12)
    gap = values.sum(axis=1) - (outputs - bases)
    assert np.abs(gap).max() < 1e-6
    assert np.abs(values[:, COLUMNS.index("note"), :]).max() < 1e-9
    # the base value is the output's mean over the background, the same for every row
    np.testing.assert_allclose(bases, np.broadcast_to(bases[0], bases.shape), rtol=0, atol=1e-12)


def test_a_row_gets_the_same_answer_alone_or_in_a_request_and_no_one_elses_random_state(
    explainer: Explainer,
) -> None:
    train = explainer.base.frame
    frame = train.head(4).assign(tenure=[1.0, 30.0, 60.0, 5.0]).reset_index(drop=True)
    np.random.seed(12345)
    _, _, together = explainer.explain(frame)
    assert np.random.randint(1 << 30) == np.random.RandomState(12345).randint(1 << 30)
    _, _, alone = explainer.explain(frame.iloc[[2]])
    assert np.array_equal(together[2], alone[0])
    assert np.abs(together[:, COLUMNS.index("tenure"), 0]).max() > 1e-3  # a column it reads


def test_per_class_outputs_add_up_class_by_class(fitted: tuple[pd.DataFrame, object]) -> None:
    def per_class(frame: pd.DataFrame) -> np.ndarray:  # three "classes", one reads two columns
        tenure, charges = frame["tenure"].to_numpy(), frame["charges"].fillna(50).to_numpy()
        pro = (frame["plan"] == "pro").to_numpy(dtype=float)
        return np.column_stack([tenure * charges / 1e3, pro, np.tanh(tenure / 30) - pro])

    explainer = Explainer(background(fitted[0]), per_class)
    frame = fitted[0].sample(3, random_state=1).reset_index(drop=True)
    outputs, bases, values = explainer.explain(frame)
    assert values.shape == (3, len(COLUMNS), 3)
    assert np.abs(values.sum(axis=1) - (outputs - bases)).max() < 1e-9
    for k, reads in enumerate([{"tenure", "charges"}, {"plan"}, {"tenure", "plan"}]):
        unread = [COLUMNS.index(c) for c in COLUMNS if c not in reads]
        assert np.abs(values[:, unread, k]).max() == 0.0


def test_codes_round_trip_every_dtype_and_null() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.5, np.nan, 1.5, 2.0],
            "n": pd.array([1, None, 3, 1], dtype="Int64"),
            "s": ["a", None, "b", "a"],
            "c": pd.Categorical(["u", "v", None, "u"]),
            "b": [True, False, True, True],
        }
    )
    codes = Codes(frame)
    pd.testing.assert_frame_equal(codes.decode(codes.codes), frame)
    assert codes.codes[:, 0].tolist() == [0, 1, 0, 2]  # equal values share a code, NaN its own
    # rows to explain extend the tables; the background keeps its codes and its values
    more = pd.DataFrame(
        {
            "x": [9.0],
            "n": pd.array([None], dtype="Int64"),
            "s": ["z"],
            "c": pd.Categorical(["v"], categories=["u", "v"]),
            "b": [False],
        }
    )
    grown, new = codes.extended(more)
    assert np.array_equal(grown.codes[: len(frame)], codes.codes)
    pd.testing.assert_frame_equal(grown.decode(new), more)
    mixed = grown.decode(np.where([[True, False, True, False, True]], new, codes.codes[:1]))
    assert mixed.iloc[0].tolist()[:3] == [9.0, 1, "z"]


def test_answer_names_the_columns_and_the_classes() -> None:
    outputs, bases = np.array([[0.2, 0.8]]), np.array([[0.5, 0.5]])
    values = np.array([[[-0.1, 0.1], [-0.2, 0.2]]])
    (row,) = answer(["a", "b"], outputs, bases, values, ["yes"], ["no", "yes"])
    assert row == {
        "prediction": "yes",
        "output": {"no": 0.2, "yes": 0.8},
        "base_value": {"no": 0.5, "yes": 0.5},
        "attributions": {"no": {"a": -0.1, "b": -0.2}, "yes": {"a": 0.1, "b": 0.2}},
    }
    (one,) = answer(["a", "b"], outputs[:, 1:], bases[:, 1:], values[:, :, 1:], [1], ["proba_1"])
    assert one == {
        "prediction": 1,
        "output": 0.8,
        "base_value": 0.5,
        "attributions": {"a": 0.1, "b": 0.2},
    }


@pytest.mark.parametrize("value", [0, 10_001, 2.5, True, "10"])
def test_explain_max_rows_out_of_range_is_one_sentence(value: object) -> None:
    text = json.dumps(
        {"cells": [], "metadata": {"nb2prod": {"serving": {"explain_max_rows": value}}}}
    )
    notebook = parse(text, Path("churn.ipynb"))
    (problem,) = notebook.problems
    assert problem.key == "serving"
    assert problem.message == (
        "churn.ipynb: notebook setting nb2prod.serving.explain_max_rows must be a whole number "
        f"from 1 to 10000 (the most rows one POST /explain may hold), not {value!r}."
    )
    assert notebook.settings.explain_max_rows == EXPLAIN_MAX_ROWS


def test_explain_max_rows_is_read() -> None:
    text = json.dumps({"cells": [], "metadata": {"nb2prod": {"serving": {"explain_max_rows": 7}}}})
    notebook = parse(text, Path("churn.ipynb"))
    assert not notebook.problems and notebook.settings.explain_max_rows == 7


_KERNEL = "shap.utils._masked_model._build_fixed_single_output"


def _kernel_kind(first: str) -> list[str]:
    """In a fresh process: run ``first``, import shap as the explainer does, and report the
    kind of one of shap's masking kernels and whether NUMBA_DISABLE_JIT was left behind."""
    import subprocess
    import sys

    code = (
        f"import os; {first}; from nb2prod.serving.explain import import_shap; "
        f"import_shap(); import shap.utils._masked_model; k = {_KERNEL}; "
        "print(type(k).__name__, os.environ.get('NUMBA_DISABLE_JIT'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.split()


def test_shap_kernels_stay_python_unless_the_process_loaded_numba_itself() -> None:
    # nothing loaded numba: shap's kernels are plain functions (no 6 s compile), env untouched
    assert _kernel_kind("pass") == ["function", "None"]
    # the notebook's code uses numba: it is left as it is, and the kernels are numba's
    assert _kernel_kind("import numba")[0] == "CPUDispatcher"
