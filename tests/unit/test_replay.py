"""bento/replay.py and serving/replay_worker.py: a table through a bento's own path, in its
own process, answered row by row as the service would (a bento lifted in-process)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2prod.bento.locate import load_pipeline, open_bento
from nb2prod.bento.replay import replay
from nb2prod.errors import ShadowError
from nb2prod.serving import replay_worker, validation
from tests.support import PROPS, lift_in_process


@pytest.fixture(scope="module")
def gym(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gym-renewal classifier (a ratio that is infinite at the schema's edge), lifted."""
    work = tmp_path_factory.mktemp("replay") / "gym-work"
    lift_in_process(PROPS / "ratio_overflow.ipynb", work)
    return work


def _rows(gym: Path) -> pd.DataFrame:
    frame = pd.read_parquet(gym / "train" / "reference.parquet").head(150).reset_index(drop=True)
    frame.loc[5, "age"] = 10  # below the schema's 16
    frame.loc[7, "plan"] = "gold"  # not one of the plans
    frame.loc[9, "visits_per_month"] = 1e-320  # passes the schema; its fee per visit is infinite
    frame["member_id"] = range(len(frame))  # not an input: ignored
    return frame


def test_replay_answers_each_row_as_the_service_would(gym: Path) -> None:
    # Given rows with three bad ones among them, in requests of 64 rows
    frame = _rows(gym)
    # When they are replayed through the bento
    replayed = replay(gym, frame, batch_rows=64, latency_rows=10)
    # Then only the bad rows are rejected, each with the failures of its 422 sent alone
    assert replayed.rows == 150 and replayed.accepted == 147
    assert replayed.rejected_rows == [5, 7, 9]
    with open_bento(gym) as bento:
        pipeline = load_pipeline(bento.src, bento.manifest)
        columns = bento.manifest["reference"]["columns"]
        with open(bento.model_file, "rb") as fh:
            model = pickle.load(fh)
    inputs = frame[columns]
    for reject in replayed.rejects[:2]:
        row = inputs.iloc[[reject["row"]]].astype(object).to_dict(orient="records")
        _, failures = validation.validate(pipeline.input_schema, row, columns)
        assert reject["status"] == 422 and reject["failures"] == list(failures) != []
    infinite = replayed.rejects[2]
    assert infinite["failures"] == [
        {"row": 0, "column": "fee_per_visit", "check": "finite feature", "value": None}
    ]
    # and the others get the model's own answers on the lifted features, with probabilities
    good = inputs.drop(index=[5, 7, 9])
    features = pipeline.entrypoint(pipeline.input_schema.validate(good))
    assert list(replayed.predictions.index) == list(good.index)
    assert np.array_equal(replayed.predictions["prediction"], model.predict(features))
    proba = replayed.predictions[["proba_0", "proba_1"]].to_numpy()
    assert np.allclose(proba, model.predict_proba(features), rtol=0, atol=1e-12)
    assert replayed.task == "classification" and replayed.proba_columns == ["proba_0", "proba_1"]
    assert replayed.model_version == bento.manifest["version"]
    assert replayed.latency["requests"] == 10 and replayed.latency["p50_ms"] > 0
    # and the bento's modules were imported in the worker's process, not this one
    assert not any(name == "lifted" or name.startswith("lifted.") for name in sys.modules)


def test_a_batch_size_changes_no_answer(gym: Path) -> None:
    frame = _rows(gym).head(30)
    one = replay(gym, frame, batch_rows=1, latency_rows=1, proba=False)
    many = replay(gym, frame, batch_rows=1000, latency_rows=1, proba=False)
    assert one.rejects == many.rejects
    pd.testing.assert_frame_equal(one.predictions, many.predictions)
    assert list(many.predictions.columns) == ["prediction"]


def test_rows_without_an_input_column_are_refused_in_one_sentence(gym: Path) -> None:
    with pytest.raises(ShadowError, match="lack input column.*plan") as raised:
        replay(gym, _rows(gym).drop(columns=["plan"]))
    assert raised.value.exit_code == 2


def test_a_bento_that_is_not_there_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ShadowError, match="not a build directory"):
        replay(tmp_path, pd.DataFrame({"x": [1]}))


def test_the_worker_reads_the_services_constants_without_importing_it(gym: Path) -> None:
    known = replay_worker.constants(gym / "src" / "service.py")
    assert known["INPUT_COLUMNS"] == ["age", "visits_per_month", "monthly_fee", "plan"]
    assert known["LENIENT"] is False and "INPUT_SCHEMA" not in known
