# Generated from clean.ipynb by nb2prod 0.1.0; edit the notebook, not this file.
"""Property tests of clean.ipynb: what must hold for every input the schema accepts.

Hypothesis draws input frames that pass the input schema `Raw`, and each test
checks one property of the feature entry point `features` (clean.ipynb, cell 4 (id clean-4))
or of the service path around it. No input frame is written by hand: COLUMNS below says how
each column is drawn, by Pandera from the schema where it can, otherwise from the training data.

Run it from the bento's src/ folder (or the build directory's src/):

    python -m pytest tests/test_properties.py

The model comes from NB2PROD_MODEL_FILE when set (during `nb2prod build`), else from the
BentoML store. A failure prints the smallest input frame Hypothesis found and a
@reproduce_failure line that replays it.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as pdst
from pandera.errors import SchemaError, SchemaErrors

SRC = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SRC))

from nb2prod_runtime import NonFinite, check_features, load_model  # noqa: E402
from nb2prod_validation import validate  # noqa: E402
from lifted.schema import Raw  # noqa: E402
from lifted.schema import Feats  # noqa: E402
from lifted.features import features as entrypoint  # noqa: E402

NOTEBOOK = "clean.ipynb"
ENTRYPOINT_CELL = "cell 4 (id clean-4)"
MODEL_TAG = "clean-model:<version>"
INPUT_COLUMNS = ["x", "color"]
INPUT_SCHEMA = Raw.to_schema()
OUTPUT_SCHEMA = Feats.to_schema()
MAX_ROWS = 8

# From the notebook metadata nb2prod.properties. Pandas and schema validation make each example
# slow, hence no deadline and no too_slow health check; the explain phase is off because it
# re-runs every example under a tracer.
PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=False,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pandera_column(name: str) -> pdst.column:
    """Pandera's strategy for one column of the input schema: its dtype and checks.

    These are the column strategies that ``INPUT_SCHEMA.strategy()`` puts together; drawing
    the frame below instead of through it is about three times faster per example.
    """
    INPUT_SCHEMA.register_default_backends(pd.DataFrame)  # as INPUT_SCHEMA.strategy() does
    return INPUT_SCHEMA.columns[name].strategy_component()


def with_nulls(column: pdst.column, null) -> pdst.column:
    """The column's strategy with nulls mixed in: the schema allows them."""
    # object, not numpy's str dtype, which would turn None into the text "None"
    dtype = object if null is None else column.dtype
    return pdst.column(column.name, elements=st.one_of(st.just(null), column.elements), dtype=dtype)


# How each input column is drawn.
COLUMNS = [
    # x: Pandera, from the schema (float64, >= -100, <= 100); its bounds -100.0 and 100.0 mixed in
    pandera_column("x"),
    # color: Pandera, from the schema (str, one of ['red', 'blue'])
    pandera_column("color"),
]
# The schema's own bounds: the values of its ge/le/in_range checks and the nearest values
# inside gt/lt. Pandera's strategies seldom draw them exactly, so every test mixes them in.
BOUNDS = {"x": [-100.0, 100.0]}
# Where the schema leaves a side open, the extreme values it still accepts (the largest
# magnitudes, ±1e300, ±1e-300, 0): the output contract test mixes them in too, so a feature
# that overflows there fails the build rather than a request.
EXTREMES = {}


def mixed_in(columns: list, values: dict) -> list:
    """The column strategies, with ``values[name]`` mixed into the values they draw."""
    return [
        pdst.column(
            c.name,
            elements=st.one_of(c.elements, st.sampled_from(values[c.name])),
            dtype=c.dtype,
            fill=c.fill,
            unique=c.unique,
        )
        if values.get(c.name)
        else c
        for c in columns
    ]


AT_BOUNDS = mixed_in(COLUMNS, BOUNDS)
AT_EXTREMES = mixed_in(AT_BOUNDS, EXTREMES)
# Columns drawn as plain values, then converted to the schema's dtype.
CONVERTED = []
# The column strategies promise every check of the schema, so drawn frames skip validation
# (it would cost more than everything else in these tests).
FILTER_BY_SCHEMA = False


@functools.cache
def frame_strategy(min_rows: int, max_rows: int, extremes: bool) -> st.SearchStrategy:
    """The frames of the drawn columns, built once: a new strategy per example is validated
    anew, which reads the source of every lambda in it and took a tenth of the whole run."""
    index = pdst.indexes(
        elements=st.integers(0, 9_999), min_size=min_rows, max_size=max_rows, unique=True
    )
    return pdst.data_frames(AT_EXTREMES if extremes else AT_BOUNDS, index=index)


@st.composite
def input_frames(
    draw, min_rows: int = 1, max_rows: int = MAX_ROWS, extremes: bool = False
) -> pd.DataFrame:
    """A frame the input schema accepts, as the service hands it to the entry point.

    It has min_rows to max_rows rows, never none: the service answers an empty request with
    no predictions before it calls the entry point, so an empty frame never reaches it. It
    has nulls where the schema allows them, values at the schema's bounds (and with
    ``extremes``, extreme values where a side is open), and a shuffled index such as a
    train/test split leaves behind.
    """
    frame = draw(frame_strategy(min_rows, max_rows, extremes))
    for name in CONVERTED:
        frame[name] = INPUT_SCHEMA.columns[name].dtype.coerce(frame[name])
    if FILTER_BY_SCHEMA:
        try:
            frame = INPUT_SCHEMA.validate(frame)
        except (SchemaError, SchemaErrors):
            assume(False)  # draw another frame
    return frame


class _Table:
    """A frame as the table a failure report shows, written only if Hypothesis reports it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __repr__(self) -> str:
        return f"input frame of {len(self.frame)} row(s):\n{self.frame.to_string()}"


def show(frame: pd.DataFrame) -> None:
    """Print the drawn frame as a table, with the failing example only (Hypothesis notes)."""
    note(_Table(frame))  # formatting every passing example's frame cost more than some tests


@functools.cache
def model():
    """The trained model: NB2PROD_MODEL_FILE during the build, else the BentoML store."""
    return load_model(MODEL_TAG)


def difference(got, expected, *, exact: bool = False) -> str:
    """Empty when two outputs are equal (NaN equals NaN), else where they first differ."""
    try:
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(
                got, expected, check_dtype=exact, check_exact=exact, rtol=1e-9
            )
        elif isinstance(expected, pd.Series):
            pd.testing.assert_series_equal(
                got, expected, check_dtype=exact, check_exact=exact, rtol=1e-9
            )
        elif np.issubdtype(np.asarray(expected).dtype, np.number) and not exact:
            np.testing.assert_allclose(
                np.asarray(got), np.asarray(expected), rtol=1e-9, equal_nan=True
            )
        else:
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    except AssertionError as exc:
        return str(exc).strip()
    return ""


def row_of(batch, frame: pd.DataFrame, i: int):
    """Row i of the entry point's output for the whole frame.

    By position when the output keeps every row; by index label otherwise, so a dropped row
    is compared with the (empty) output for that row alone.
    """
    if not hasattr(batch, "iloc"):
        return np.asarray(batch)[i : i + 1]
    if len(batch) == len(frame):
        return batch.iloc[[i]]
    return batch[batch.index == frame.index[i]]


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """The frame as the JSON records a client sends: missing values as null."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return json.loads(json.dumps(rows, default=str))


def serve(rows: list[dict]) -> np.ndarray:
    """What the service does with one request: validate, run the entry point, predict."""
    frame, failures = validate(INPUT_SCHEMA, rows, INPUT_COLUMNS)
    assert not failures, f"the service rejects rows the schema accepted: {failures[:3]}"
    return np.asarray(model().predict(entrypoint(frame)))


@PROPERTY_SETTINGS
@given(frame=input_frames())
def test_no_crash(frame):
    """No crash.

    The entry point accepts every non-empty frame the input schema accepts, including single
    rows and nulls where the schema allows them (the service answers an empty request without
    calling it).
    """
    show(frame)
    for part in (frame, frame.iloc[:1]):
        entrypoint(part.copy())


@PROPERTY_SETTINGS
@given(frame=input_frames())
def test_input_untouched(frame):
    """Input untouched.

    The entry point does not change the caller's frame.
    """
    show(frame)
    before = frame.copy(deep=True)
    entrypoint(frame)
    changed = difference(frame, before, exact=True)
    assert not changed, f"the entry point changed the frame it was given:\n{changed}"


@PROPERTY_SETTINGS
@given(frame=input_frames())
def test_rows_kept(frame):
    """Rows kept.

    The entry point returns as many rows as it gets, in the same order, with the same index.
    """
    show(frame)
    out = entrypoint(frame.copy())
    assert len(out) == len(frame), f"the entry point returned {len(out)} rows for {len(frame)}"
    if hasattr(out, "index"):
        assert out.index.equals(frame.index), (
            f"the entry point changed the rows' order or index: {list(frame.index)} "
            f"became {list(out.index)}"
        )


@PROPERTY_SETTINGS
@given(frame=input_frames(min_rows=1))
def test_deterministic(frame):
    """Deterministic.

    The same input frame always gives the same output.
    """
    show(frame)
    first, second = entrypoint(frame.copy()), entrypoint(frame.copy())
    changed = difference(second, first, exact=True)
    assert not changed, f"two runs on the same frame gave different outputs:\n{changed}"


@PROPERTY_SETTINGS
@given(frame=input_frames(min_rows=2))
def test_row_independence(frame):
    """Row independence.

    Each row's features are the same alone as in a batch: no batch statistics, which adaptive
    batching would turn into wrong answers.
    """
    show(frame)
    batch = entrypoint(frame.copy())
    for i in range(len(frame)):
        alone = entrypoint(frame.iloc[[i]].copy())
        changed = difference(alone, row_of(batch, frame, i))
        assert not changed, (
            f"row {i} (index {frame.index[i]}) gets different features alone than in a batch "
            f"of {len(frame)} rows:\n{changed}"
        )


@PROPERTY_SETTINGS
@given(frame=input_frames(min_rows=1, extremes=True))
def test_output_contract(frame):
    """Output contract.

    The output passes the output schema (when one is declared), has no infinite feature, and the
    model takes it, giving one finite prediction per row; also for values at the schema's bounds
    and, where it leaves a side open, at extreme values.
    """
    show(frame)
    out = entrypoint(frame.copy())
    try:
        OUTPUT_SCHEMA.validate(out, lazy=True)
    except (SchemaError, SchemaErrors) as exc:
        raise AssertionError(f"the output fails the output schema Feats:\n{exc}") from None
    try:
        check_features(out)  # the service's own check: it answers such a row 422
    except NonFinite as exc:
        raise AssertionError(
            f"the entry point gave an infinite feature `{exc.column}` in row {exc.row}, for a frame "
            "the input schema accepts; the service refuses such rows: give the schema realistic "
            "bounds, or make the feature code handle these values"
        ) from None
    predictions = np.asarray(model().predict(out))
    assert len(predictions) == len(frame), f"{len(predictions)} predictions for {len(frame)} rows"
    if np.issubdtype(predictions.dtype, np.number):
        assert np.isfinite(predictions).all(), f"predictions that are not finite: {predictions}"
    else:
        assert not pd.isna(predictions).any(), f"missing predictions: {predictions}"


@PROPERTY_SETTINGS
@given(frame=input_frames(min_rows=2))
def test_service_batch_invariance(frame):
    """Service batch invariance.

    Predicting rows in one request equals predicting them one by one, through the service's own
    validate -> features -> model path.
    """
    show(frame)
    rows = json_rows(frame)
    together = serve(rows)
    one_by_one = np.concatenate([serve([row]) for row in rows])
    changed = difference(one_by_one, together)
    assert not changed, (
        f"rows predicted one by one differ from the same rows in one request:\n{changed}"
    )
