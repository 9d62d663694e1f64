"""The compiled model: converted with skl2onnx, kept only where ONNX Runtime matches the pickle."""

from __future__ import annotations

import functools
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from nb2prod.builder.compile import Serving, compile_model, decide
from nb2prod.builder.lift import lift
from nb2prod.errors import CompileError
from nb2prod.notebook.check import check
from nb2prod.serving.compiled import CompiledModel, NotCompiled
from nb2prod.serving.runtime import load_model
from tests.support import CHECK, fake_training


def _accounts(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east"], n).astype(object),
            "seats": rng.integers(1, 60, n),
            "spend": np.round(rng.gamma(3.0, 40.0, n), 2),
        }
    )
    y = ((frame["seats"] * 0.05 - frame["spend"] * 0.004 + rng.normal(0, 1, n)) > 0).astype(int)
    return frame, y.to_numpy()


def _pipeline(estimator: object) -> Pipeline:
    encode = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="ignore"), ["region"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("model", estimator)])


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0),
        GradientBoostingClassifier(n_estimators=20, random_state=0),
    ],
    ids=["random-forest", "gradient-boosting"],
)
def test_a_tree_ensemble_pipeline_converts_and_passes_parity(estimator, tmp_path: Path) -> None:
    X, y = _accounts()
    model = _pipeline(estimator).fit(X, y)
    out = tmp_path / "model.onnx"
    result = compile_model(model, X, out)
    assert result.runtime == "compiled" and result.reason is None
    assert result.parity["rows"] == len(X) and result.parity["max_abs_diff"] <= 1e-6
    compiled = CompiledModel(out, model)
    fresh, _ = _accounts(50, seed=1)
    labels, proba = compiled.run("predict", fresh), compiled.run("predict_proba", fresh)
    expected = model.predict(fresh)
    assert labels.dtype == expected.dtype and labels.shape == expected.shape
    assert labels.tolist() == expected.tolist()
    assert proba.dtype == np.float64 and proba.shape == (50, 2)
    np.testing.assert_allclose(proba, model.predict_proba(fresh), rtol=0, atol=1e-6)
    assert list(compiled.classes_) == [0, 1]  # the pickle's attributes show through


def test_a_bare_hist_gradient_boosting_falls_back_with_the_converters_error(
    tmp_path: Path,
) -> None:
    X, y = _accounts()
    numbers = X[["seats", "spend"]]
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(numbers, y)
    out = tmp_path / "model.onnx"
    result = compile_model(model, numbers, out)
    assert result.runtime == "python" and result.parity is None
    # the cause first (why), then what raised it, cut: skl2onnx's message dumps the node
    assert result.reason.startswith(
        "skl2onnx could not convert the model (TypeError: Field onnx.AttributeProto.ints: "
        "Expected an int, got a boolean, raised as ValueError: Unable to create node"
    ), result.reason
    assert "\n" not in result.reason and len(result.reason) < 300
    assert not out.exists()


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_trees_skl2onnx_cannot_convert_serve_by_treelite_behind_the_same_gate(
    task: str, tmp_path: Path
) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from nb2prod.serving.compiled import TREES_FILE, load

    # Given churn's shape of model: one-hot encoding, then HistGradientBoosting (which
    # skl2onnx 1.20 cannot convert), trained with missing values
    X, y = _accounts(900)
    X.loc[::7, "spend"] = np.nan
    if task == "classifier":
        model = _pipeline(HistGradientBoostingClassifier(max_iter=60, random_state=0)).fit(X, y)
    else:
        target = X["seats"] * 2.5 + X["spend"].fillna(0) / 10
        model = _pipeline(HistGradientBoostingRegressor(max_iter=60, random_state=0)).fit(X, target)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    # When it is compiled
    result = compile_model(model, X, tmp_path / "model.onnx")
    # Then the steps before the trees are ONNX, the trees Treelite, exact on complete rows
    assert result.runtime == "compiled", result.reason
    assert result.parity["engine"] == "onnxruntime+treelite"
    assert result.parity["rows"] == int(X.notna().all(axis=1).sum())
    assert result.parity["max_abs_diff"] <= 1e-6
    assert (tmp_path / TREES_FILE).is_file()
    compiled = load(tmp_path / "model.pkl", model)
    fresh, _ = _accounts(300, seed=5)
    fresh.loc[::5, "spend"] = np.nan  # these rows go to the pickle, the others to Treelite
    incomplete, complete = fresh.iloc[::5], fresh.drop(index=fresh.index[::5])
    methods = ["predict", *(["predict_proba"] if task == "classifier" else [])]
    for method in methods:
        got = getattr(compiled, method)(fresh)
        np.testing.assert_array_equal(got[::5], getattr(model, method)(incomplete))
        np.testing.assert_array_equal(
            np.delete(got, np.s_[::5], axis=0), compiled.run(method, complete)
        )
        np.testing.assert_allclose(got, getattr(model, method)(fresh), rtol=0, atol=1e-6)
    if task == "classifier":
        complete = fresh.dropna()
        assert compiled.run("predict_proba", complete).shape == (len(complete), 2)
    # a frame of TREES_MAX_ROWS rows, complete or not, goes to the pickle whole (faster there)
    from nb2prod.serving.compiled import TREES_MAX_ROWS

    counted = _Counted(model)
    compiled = load(tmp_path / "model.pkl", counted)
    many, _ = _accounts(TREES_MAX_ROWS, seed=6)
    for frame in (many.dropna().head(TREES_MAX_ROWS - 1), many):
        counted.rows.clear()
        got, whole = compiled.predict(frame), model.predict(frame)
        if len(frame) < TREES_MAX_ROWS:  # Treelite's, within the gate's tolerance
            assert counted.rows == [] and np.abs(got - whole).max() <= 1e-6
        else:  # the pickle's own answer
            assert counted.rows == [TREES_MAX_ROWS] and np.array_equal(got, whole)


def test_a_candidate_that_converts_but_differs_names_the_first_differing_row() -> None:
    # float32 inputs on a regression with large targets: real conversion, a real difference
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(1e3, 50, 300), "b": rng.normal(5, 2, 300)})
    y = 1e6 + 400 * X["a"] + 1e4 * X["b"] + rng.normal(0, 10, 300)
    model = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
    result = compile_model(model, X, precisions=("float",))
    assert result.runtime == "python"
    found = re.fullmatch(
        r"reference row (\d+) differs in prediction: pickle (\S+), compiled (\S+) "
        r"\(tolerance 1e-06\) \[float inputs\]",
        result.reason,
    )
    assert found, result.reason
    row = int(found[1])
    want = model.predict(X)
    assert float(found[2]) == want[row]
    assert abs(float(found[3]) - want[row]) > 1e-6
    # with double inputs the same model is exact, and serves compiled
    assert compile_model(model, X).runtime == "compiled"


def test_complete_rows_only_are_compared_and_a_row_with_a_missing_value_serves_the_pickle(
    tmp_path: Path,
) -> None:
    X, y = _accounts()
    model = _pipeline(RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
    with_missing = X.copy()
    with_missing["spend"] = with_missing["spend"].astype(float)
    with_missing.loc[[3, 10], "spend"] = np.nan
    with_missing.loc[5, "region"] = None
    result = compile_model(model, with_missing, tmp_path / "model.onnx")
    assert result.runtime == "compiled" and result.parity["rows"] == len(X) - 3
    compiled = CompiledModel(tmp_path / "model.onnx", model)
    rows = with_missing.loc[[2, 3, 4, 5]].reset_index(drop=True)
    with pytest.raises(NotCompiled):
        compiled.run("predict", rows)
    assert compiled.predict(rows).tolist() == model.predict(rows).tolist()
    proba = compiled.predict_proba(rows)  # rows 1 and 3 by the pickle, 0 and 2 compiled
    assert np.array_equal(proba[[1, 3]], model.predict_proba(rows.loc[[1, 3]]))
    assert np.array_equal(proba[[0, 2]], compiled.run("predict_proba", rows.loc[[0, 2]]))
    assert np.array_equal(compiled.predict_proba(rows.loc[[1]]), model.predict_proba(rows.loc[[1]]))


def test_trees_that_split_on_missing_values_go_to_treelite_not_skl2onnx() -> None:
    # skl2onnx 1.20's threshold search never ends on an infinite threshold (this test would
    # hang if it were tried); Treelite reads the forest as fitted
    X, y = _accounts()
    X["spend"] = X["spend"].astype(float)
    X.loc[::9, "spend"] = np.nan
    model = _pipeline(RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, y)
    result = compile_model(model, X)
    assert result.runtime == "compiled", result.reason
    assert result.parity["engine"] == "onnxruntime+treelite"
    # without a step before it, nothing else can take the forest: the reason says why
    bare = RandomForestClassifier(n_estimators=5, random_state=0).fit(X[["seats", "spend"]], y)
    result = compile_model(bare, X[["seats", "spend"]])
    assert result.runtime == "python" and "split on missing values" in result.reason


def _clean(tmp_path: Path, serving: dict | None) -> Path:
    node = json.loads((CHECK / "clean.ipynb").read_text())
    if serving is not None:
        node["metadata"]["nb2prod"] = {"serving": serving}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "clean.ipynb"
    path.write_text(json.dumps(node))
    return path


def _trained(tmp_path: Path, estimator: object):
    training = fake_training(tmp_path / "train")
    frame = pd.read_parquet(training.reference_file)
    feats = pd.DataFrame({"x": frame["x"], "is_red": (frame["color"] == "red").astype(int)})
    with open(training.model_file, "wb") as fh:
        pickle.dump(estimator.fit(feats, [1, 0, 1]), fh)
    return training


def _lift(tmp_path: Path, serving: dict | None, estimator: object):
    checked = check(_clean(tmp_path, serving))
    training = _trained(tmp_path, estimator)
    decide_it = functools.partial(decide, checked, training, tmp_path / "src")
    return lift(checked, training, runtime=decide_it), training


def test_a_build_that_compiles_records_it_and_ships_onnxruntime(tmp_path: Path) -> None:
    lifted, training = _lift(tmp_path, None, DecisionTreeClassifier(random_state=0))
    serving = lifted.manifest["serving"]
    assert serving["runtime"] == "compiled" and serving["parity"]["rows"] == 3
    assert serving["parity"]["rows_from"] == "reference"
    assert training.model_file.with_name("model.onnx").is_file()
    bentofile = next(g.text for g in lifted.files if g.path == "bentofile.yaml")
    assert "onnxruntime==" in bentofile
    assert any(p.startswith("onnxruntime==") for p in lifted.manifest["packages"])


def test_serving_runtime_python_never_tries(tmp_path: Path) -> None:
    checked = check(_clean(tmp_path, {"runtime": "python"}))
    training = fake_training(tmp_path / "train")  # no model.pkl: nothing may read it
    stale = training.model_file.with_name("model.onnx")
    stale.write_bytes(b"an earlier build's")
    result = decide(checked, training, tmp_path / "src", [])
    assert result == Serving("python", "the notebook sets serving.runtime: python")
    assert not stale.exists()
    lifted = lift(checked, training, runtime=lambda code: result)
    assert lifted.manifest["serving"]["runtime"] == "python"
    assert not any("onnxruntime" in p for p in lifted.manifest["packages"])


def test_compiled_that_cannot_compile_fails_the_build_in_one_sentence(tmp_path: Path) -> None:
    model = HistGradientBoostingClassifier(max_iter=3)
    with pytest.raises(CompileError) as caught:
        _lift(tmp_path, {"runtime": "compiled"}, model)
    message = str(caught.value)
    assert message.startswith(
        "clean.ipynb: the notebook sets serving.runtime: compiled, but its model cannot serve "
        "compiled: skl2onnx could not convert the model ("
    )
    assert message.endswith(".") and "\n" not in message
    assert caught.value.fields["reason"] in message
    # auto: the same model falls back, and says why
    auto, _ = _lift(
        tmp_path / "auto", {"runtime": "auto"}, HistGradientBoostingClassifier(max_iter=3)
    )
    assert auto.manifest["serving"]["runtime"] == "python"
    assert auto.manifest["serving"]["reason"] == caught.value.fields["reason"]


@pytest.mark.parametrize(
    ("serving", "words"),
    [
        ({"runtime": "compild"}, "did you mean 'compiled'?"),
        ({"runtme": "auto"}, "did you mean `runtime`?"),
        ("compiled", "must be a mapping"),
    ],
)
def test_a_bad_serving_setting_is_a_bad_setting_finding(tmp_path: Path, serving, words) -> None:
    findings = [f for f in check(_clean(tmp_path, serving)).findings if f.code == "bad-setting"]
    assert len(findings) == 1 and findings[0].name == "nb2prod.serving"
    assert findings[0].message.startswith("clean.ipynb: notebook setting nb2prod.serving")
    assert words in findings[0].message


def test_load_model_gives_the_runtime_the_service_serves(tmp_path: Path, monkeypatch) -> None:
    X, y = _accounts(200)
    model = _pipeline(RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, y)
    with open(tmp_path / "model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    assert compile_model(model, X, tmp_path / "model.onnx").runtime == "compiled"
    monkeypatch.setenv("NB2PROD_MODEL_FILE", str(tmp_path / "model.pkl"))
    served = load_model("x:1", runtime="compiled")
    assert isinstance(served, CompiledModel)
    assert served.predict(X).tolist() == model.predict(X).tolist()
    assert type(load_model("x:1", runtime="python")) is Pipeline
    assert type(load_model("x:1")) is Pipeline  # no manifest beside the module: the pickle


def test_the_build_summary_says_which_runtime_serves_and_why(tmp_path: Path) -> None:
    from tests.unit.test_console import long_result, summary

    compiled = {
        "runtime": "compiled",
        "reason": None,
        "parity": {"rows": 900, "max_abs_diff": 3.5e-7},
    }
    python = Serving("python", "skl2onnx could not convert the model (ValueError: x)").to_manifest()
    lines = summary(long_result(tmp_path, serving=compiled))
    assert (
        "runtime               compiled (onnxruntime, parity on 900 rows, max diff 3.5e-07)"
        in lines
    )
    lines = summary(long_result(tmp_path, serving=python))
    expected = (
        "python (compiled model not used: skl2onnx could not convert the model (ValueError: x))"
    )
    assert f"runtime               {expected}" in lines
    assert long_result(tmp_path, serving=python).to_dict()["serving"] == python


class _Counted:
    """The real fitted model, counting the rows each call is given (the routing under test)."""

    def __init__(self, model: object) -> None:
        self.model, self.rows = model, []

    def __getattr__(self, name: str) -> object:
        method = getattr(self.model, name)
        if name not in ("predict", "predict_proba"):
            return method

        def counted(features: object) -> object:
            self.rows.append(len(features))
            return method(features)

        return counted


@pytest.mark.parametrize("layout", ["columns", "matrix"])
def test_only_the_rows_with_a_missing_value_go_to_the_pickle_and_come_back_in_order(
    layout: str, tmp_path: Path
) -> None:
    from sklearn.impute import SimpleImputer

    # Given a real converted model (one ONNX input per column, or one matrix) and a frame
    # with a few incomplete rows among complete ones
    X, y = _accounts()
    X["spend"] = X["spend"].astype(float)
    if layout == "columns":
        model = _pipeline(RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
    else:
        X = X[["seats", "spend"]].astype(float)
        model = make_pipeline(SimpleImputer(), StandardScaler(), Ridge()).fit(X, y)
    assert compile_model(model, X, tmp_path / "model.onnx").runtime == "compiled"
    counted = _Counted(model)
    compiled = CompiledModel(tmp_path / "model.onnx", counted)
    assert compiled.layout == layout
    fresh, _ = _accounts(40, seed=3)
    fresh = fresh[list(X.columns)].astype({"spend": float})
    missing = [0, 7, 8, 31]
    fresh.loc[[0, 8], "spend"] = np.nan
    if layout == "columns":
        fresh.loc[[7, 31], "region"] = None
    else:
        fresh.loc[[7, 31], "seats"] = np.nan
    methods = ["predict", *(["predict_proba"] if layout == "columns" else [])]
    for method in methods:
        counted.rows.clear()
        # When the whole frame is answered
        got = getattr(compiled, method)(fresh)
        # Then the pickle saw the incomplete rows only, in one call
        assert counted.rows == [len(missing)]
        # and the rest are the compiled model's answers on the complete rows, put back in
        # order: the dtype and shape of today's answers, within the parity gate's tolerance
        whole = getattr(model, method)(fresh)
        complete = fresh.drop(index=missing)
        assert got.dtype == whole.dtype and got.shape == whole.shape
        np.testing.assert_array_equal(got[missing], getattr(model, method)(fresh.loc[missing]))
        np.testing.assert_array_equal(
            np.delete(got, missing, axis=0), compiled.run(method, complete)
        )
        np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)
    # a frame with no complete row, and one with no missing value, take one model each
    counted.rows.clear()
    assert (
        compiled.predict(fresh.loc[missing]).tolist() == model.predict(fresh.loc[missing]).tolist()
    )
    assert counted.rows == [len(missing)]
    counted.rows.clear()
    compiled.predict(fresh.drop(index=missing))
    assert counted.rows == []
