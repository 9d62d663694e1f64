"""The bento's runtime in-process: one request's failure is its own, and limits at the door."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2prod.serving.limits import RequestLimits
from nb2prod.serving.runtime import (
    Batcher,
    ModelNotLoaded,
    NonFinite,
    check_features,
    check_outputs,
    load_model,
)

# --- the generated tests' model ------------------------------------------------------------


def test_the_tests_model_comes_from_the_file_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"fitted": True}))
    monkeypatch.setenv("NB2PROD_MODEL_FILE", str(tmp_path / "model.pkl"))
    assert load_model("churn-model:v1") == {"fitted": True}


def test_a_model_that_cannot_load_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NB2PROD_MODEL_FILE", "train/model.pkl")  # relative to another folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotLoaded) as info:
        load_model("churn-model:v1")
    assert str(info.value).startswith(
        "cannot load the model from NB2PROD_MODEL_FILE=train/model.pkl (FileNotFoundError: "
    )
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle")
    monkeypatch.setenv("NB2PROD_MODEL_FILE", str(tmp_path / "broken.pkl"))
    with pytest.raises(ModelNotLoaded, match=r"broken\.pkl \(UnpicklingError: "):
        load_model("churn-model:v1")


# --- non-finite features and predictions -------------------------------------------------


def test_an_infinite_feature_names_its_row_and_column() -> None:
    features = pd.DataFrame({"ratio": [1.0, np.inf, 2.0], "label": ["a", "b", "c"]})
    with pytest.raises(NonFinite) as info:
        check_features(features)
    assert (info.value.row, info.value.column) == (1, "ratio")
    assert info.value.failure == {
        "row": 1,
        "column": "ratio",
        "check": "finite feature",
        "value": None,
    }


def test_the_first_infinite_row_is_named_then_its_first_column() -> None:
    features = pd.DataFrame(
        {
            "a": [1.0, 2.0, np.inf],
            "n": [1, 2, 3],
            "b": pd.array([None, -np.inf, np.inf], dtype="Float64"),
            "c": [1.0, np.inf, 1.0],
        }
    )
    with pytest.raises(NonFinite) as info:
        check_features(features)
    assert (info.value.row, info.value.column) == (1, "b")


def test_a_missing_feature_is_not_an_error() -> None:
    check_features(pd.DataFrame({"x": [np.nan, 1.0], "n": pd.array([None, 2], dtype="Int64")}))
    check_features(np.array([[1.0, np.nan]]))


def test_an_infinite_value_in_an_array_of_features_is_found() -> None:
    with pytest.raises(NonFinite) as info:
        check_features(np.array([[1.0, 2.0], [3.0, -np.inf]]))
    assert (info.value.row, info.value.column) == (1, "feature 1")


def test_a_nan_prediction_is_an_error_but_labels_are_not() -> None:
    with pytest.raises(NonFinite) as info:
        check_outputs(np.array([0.5, np.nan]), ["prediction"])
    assert (info.value.row, info.value.column, info.value.stage) == (1, "prediction", "prediction")
    with pytest.raises(NonFinite) as info:
        check_outputs(np.array([[0.2, 0.8], [np.inf, 0.0]]), ["proba_0", "proba_1"])
    assert info.value.column == "proba_0"
    check_outputs(np.array(["yes", "no"], dtype=object), ["prediction"])


# --- the batcher: a bad request in a batch fails alone -----------------------------------


def test_one_bad_request_in_a_batch_fails_alone() -> None:
    def run(frames: list[pd.DataFrame]) -> list[np.ndarray]:
        batch = pd.concat(frames, ignore_index=True)
        check_features(batch)  # raises for the whole batch when any frame holds an infinity
        return [f["x"].to_numpy() * 2 for f in frames]

    async def main() -> list:
        batcher = Batcher(run, max_rows=1000)
        frames = [pd.DataFrame({"x": [float(i)]}) for i in range(20)]
        frames[7] = pd.DataFrame({"x": [np.inf]})
        return await asyncio.gather(*(batcher(f) for f in frames), return_exceptions=True)

    answers = asyncio.run(main())
    failed = [i for i, a in enumerate(answers) if isinstance(a, Exception)]
    assert failed == [7]
    assert isinstance(answers[7], NonFinite) and answers[7].row == 0  # its own row 0
    assert [float(a[0]) for i, a in enumerate(answers) if i != 7] == [
        2.0 * i for i in range(20) if i != 7
    ]


def test_the_batch_still_coalesces_concurrent_requests() -> None:
    calls: list[int] = []

    def run(frames: list[pd.DataFrame]) -> list[np.ndarray]:
        calls.append(len(frames))
        return [f["x"].to_numpy() for f in frames]

    async def main() -> None:
        batcher = Batcher(run, max_rows=1000)
        await asyncio.gather(*(batcher(pd.DataFrame({"x": [1.0]})) for _ in range(30)))

    asyncio.run(main())
    assert sum(calls) == 30 and max(calls) > 1  # later requests joined one model call


# --- limits at the door -----------------------------------------------------------------


class App:
    """The inner ASGI app: records the body it was given and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def call(
    limits: RequestLimits,
    chunks: list[bytes],
    *,
    headers: dict[str, str] | None = None,
    path: str = "/predict",
    method: str = "POST",
    gap: float = 0.0,
) -> tuple[int, dict]:
    sent: list[dict] = []
    given = iter(enumerate(chunks))

    async def receive() -> dict:
        i, chunk = next(given, (None, None))
        if chunk is None:
            await asyncio.sleep(3600)  # a client that stops sending
        if gap:
            await asyncio.sleep(gap)
        return {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}

    async def send(message: dict) -> None:
        sent.append(message)

    raw = {"content-type": "application/json", **(headers or {})}
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in raw.items() if v is not None],
    }
    asyncio.run(limits(scope, receive, send))
    status = sent[0]["status"]
    body = json.loads(sent[1]["body"]) if len(sent) > 1 and sent[1]["body"] else {}
    return status, body


def limited(app: App) -> RequestLimits:
    return RequestLimits(app, max_body_bytes=1000, model_version="v1")


def test_a_json_body_within_the_limit_reaches_the_service_whole() -> None:
    app = App()
    status, _ = call(limited(app), [b'{"rows": ', b"[]}"])
    assert status == 200 and app.bodies == [b'{"rows": []}']


@pytest.mark.parametrize(
    "media", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_other_media_types_get_415(media: str) -> None:
    app = App()
    status, body = call(limited(app), [b"{}"], headers={"content-type": media})
    assert status == 415 and app.bodies == []
    assert media.split(";")[0] in body["error"] and body["model_version"] == "v1"


def test_a_missing_content_type_gets_415() -> None:
    app = App()
    scope_headers = {"content-type": None}
    status, body = call(limited(app), [b"{}"], headers=scope_headers)
    assert status == 415 and "not none" in body["error"]


def test_a_declared_oversized_body_gets_413_before_it_is_read() -> None:
    app = App()
    status, body = call(limited(app), [], headers={"content-length": "5000000"})
    assert status == 413 and app.bodies == []
    assert "5000000 bytes" in body["error"] and "NB2PROD_MAX_BODY_MB" in body["error"]


def test_a_body_that_grows_past_the_limit_gets_413() -> None:
    app = App()
    status, _ = call(limited(app), [b"x" * 600, b"x" * 600])
    assert status == 413 and app.bodies == []


def test_a_slow_sender_gets_408_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NB2PROD_BODY_TIMEOUT_S", "0.2")
    app = App()
    status, body = call(limited(app), [b"{", b'"rows"', b": []}"], gap=0.15)
    assert status == 408 and app.bodies == []
    assert "0.2 s" in body["error"]


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NB2PROD_MAX_BODY_MB", "2")
    assert RequestLimits(App(), max_body_bytes=1000).max_body == 2 * 2**20
    monkeypatch.setenv("NB2PROD_MAX_BODY_MB", "lots")
    assert RequestLimits(App(), max_body_bytes=1000).max_body == 1000


@pytest.mark.parametrize(("path", "method"), [("/healthz", "GET"), ("/metadata", "POST")])
def test_other_routes_pass_untouched(path: str, method: str) -> None:
    app = App()
    status, _ = call(
        limited(app),
        [b"anything"],
        headers={"content-type": "text/plain"},
        path=path,
        method=method,
    )
    assert status == 200 and app.bodies == [b"anything"]


def test_the_model_runs_without_sklearn_revalidating_only_a_complete_input() -> None:
    """``call_model`` turns scikit-learn's input checks off only for a frame with no missing
    value: it gives the same answer, and a model that cannot take NaN still refuses one."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    from nb2prod.serving.runtime import call_model, complete

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = LogisticRegression().fit(X, X["a"] + X["b"] > 0)
    seen = []

    class Spy:
        def predict(self, frame):
            seen.append(sklearn.get_config()["assume_finite"])
            return model.predict(frame)

    assert complete(X) and call_model(Spy(), "predict", X).tolist() == model.predict(X).tolist()
    assert seen == [True] and sklearn.get_config()["assume_finite"] is False  # restored
    holed = X.head(3).assign(a=[0.5, np.nan, 1.0])
    assert not complete(holed)
    with pytest.raises(ValueError, match="NaN"):
        call_model(model, "predict", holed)
    assert not complete(np.array([["x", None]], dtype=object))
