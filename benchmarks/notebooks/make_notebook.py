"""Write ``bookings.ipynb``: the benchmark's notebook that no code path was tuned for.

Run from anywhere: ``python benchmarks/notebooks/make_notebook.py``. The output is the same on
every run and it is committed. The notebook is written as a user would: nbformat 4.4 with no
cell ids, sources as line lists, imperative data preparation, its data drawn in the notebook
with a fixed seed. Its schema is the point: no ``coerce``, a custom column check
(``@pa.check``) and a frame-wide one (``@pa.dataframe_check``), so no request can be decided
by the service's fast path and every one goes to Pandera. The model (a random forest behind a
one-hot encoder) is neither churn's nor diabetes'.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}
SETTINGS = {"gates": {"roc_auc": ">= 0.65"}, "reference": "X_train"}

CELLS = [
    (
        "markdown",
        """# Hotel booking cancellations

Which bookings will be cancelled before arrival? The bookings are simulated below (fixed
seed) with the quirks of a property-management export: a missing daily rate now and then,
dates as text, a few impossible rows to drop.""",
        [],
    ),
    ("code", "n_trees = 100\nmin_leaf = 5\nseed = 2024\nn_bookings = 5000", ["parameters"]),
    (
        "code",
        """import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split""",
        [],
    ),
    (
        "code",
        """rng = np.random.default_rng(seed)
hotel = rng.choice(["city", "resort"], size=n_bookings, p=[0.65, 0.35])
lead_time = rng.gamma(1.2, 80, size=n_bookings).astype(int)
arrival = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, size=n_bookings), unit="D")
nights = 1 + rng.poisson(2.5, size=n_bookings)
adults = rng.choice([1, 2, 3, 4], size=n_bookings, p=[0.2, 0.65, 0.1, 0.05])
children = rng.choice([0, 1, 2, 3], size=n_bookings, p=[0.8, 0.1, 0.08, 0.02])
adr = np.round(rng.gamma(6, 17, size=n_bookings) * np.where(hotel == "resort", 1.2, 1.0), 2)
deposit = rng.choice(["none", "refundable", "non-refundable"], size=n_bookings, p=[0.8, 0.05, 0.15])
previous = rng.poisson(0.1, size=n_bookings)
requests = rng.choice([0, 1, 2, 3], size=n_bookings, p=[0.55, 0.3, 0.1, 0.05])

bookings = pd.DataFrame(
    {
        "hotel": hotel,
        "lead_time": lead_time,
        "arrival_date": arrival.strftime("%Y-%m-%d"),
        "nights": nights,
        "adults": adults,
        "children": children,
        "adr": adr,
        "deposit_type": deposit,
        "previous_cancellations": previous,
        "special_requests": requests,
    }
)
bookings.loc[rng.random(n_bookings) < 0.04, "adr"] = np.nan""",
        [],
    ),
    (
        "code",
        """# The export has a few rows nobody could have booked: drop them, as the hotel's analysts do.
bookings = bookings[bookings["lead_time"] <= 700]
bookings = bookings[bookings["adults"] + bookings["children"] <= 6].reset_index(drop=True)

logit = (
    -1.5
    + 0.008 * bookings["lead_time"]
    + 1.5 * (bookings["deposit_type"] == "non-refundable")
    - 0.5 * bookings["special_requests"]
    + 0.9 * bookings["previous_cancellations"]
    + 0.4 * (bookings["hotel"] == "city")
)
cancelled = (rng.random(len(bookings)) < 1 / (1 + np.exp(-logit))).astype(int)""",
        [],
    ),
    ("code", 'bookings.describe(include="all")', ["nb2prod:skip"]),
    ("code", 'cancelled.mean(), bookings.groupby("deposit_type").size()', ["nb2prod:skip"]),
    (
        "markdown",
        """## What a booking looks like
Checked on every request. Ints are ints here: no `coerce`.""",
        [],
    ),
    (
        "code",
        """import pandera.pandas as pa
from pandera.typing import DataFrame, Series


class Booking(pa.DataFrameModel):
    hotel: Series[str] = pa.Field(isin=["city", "resort"])
    lead_time: Series[int] = pa.Field(ge=0, le=730)
    arrival_date: Series[str]
    nights: Series[int] = pa.Field(ge=1, le=60)
    adults: Series[int] = pa.Field(ge=1, le=10)
    children: Series[int] = pa.Field(ge=0, le=10)
    adr: Series[float] = pa.Field(ge=0, le=5000, nullable=True)
    deposit_type: Series[str] = pa.Field(isin=["none", "refundable", "non-refundable"])
    previous_cancellations: Series[int] = pa.Field(ge=0, le=50)
    special_requests: Series[int] = pa.Field(ge=0, le=5)

    @pa.check("arrival_date")
    def is_a_date(cls, dates: Series[str]) -> Series[bool]:
        return pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce").notna()

    @pa.dataframe_check
    def room_for_everyone(cls, df: pd.DataFrame) -> Series[bool]:
        return df["adults"] + df["children"] <= 12

    class Config:
        strict = True""",
        ["nb2prod:schema"],
    ),
    (
        "code",
        """CATEGORIES = ["hotel", "deposit_type"]


def features(df: DataFrame[Booking]) -> pd.DataFrame:
    out = df.copy()
    arrival = pd.to_datetime(out.pop("arrival_date"), format="%Y-%m-%d")
    out["arrival_month"] = arrival.dt.month
    out["arrival_weekday"] = arrival.dt.weekday
    out["guests"] = out["adults"] + out["children"]
    out["stay_cost"] = out["adr"] * out["nights"]
    return out""",
        ["nb2prod:features"],
    ),
    (
        "code",
        """X_train, X_test, y_train, y_test = train_test_split(
    bookings, cancelled, test_size=0.2, random_state=seed, stratify=cancelled
)""",
        [],
    ),
    ("markdown", "## Model", []),
    (
        "code",
        """from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

encode = ColumnTransformer(
    [("onehot", OneHotEncoder(handle_unknown="ignore"), CATEGORIES)], remainder="passthrough"
)
forest = RandomForestClassifier(n_estimators=n_trees, min_samples_leaf=min_leaf, random_state=seed)
model = Pipeline([("encode", encode), ("forest", forest)])
model.fit(features(X_train), y_train)""",
        ["nb2prod:train"],
    ),
    (
        "code",
        """from sklearn.metrics import accuracy_score, roc_auc_score

scores = model.predict_proba(features(X_test))[:, 1]
metrics = {
    "roc_auc": float(roc_auc_score(y_test, scores)),
    "accuracy": float(accuracy_score(y_test, scores > 0.5)),
}
metrics""",
        ["nb2prod:evaluate"],
    ),
]


def lines(source: str) -> list[str]:
    """A source as nbformat writes it: a list of lines, each but the last ending in a newline."""
    parts = source.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def notebook() -> dict:
    cells = []
    for kind, source, tags in CELLS:
        cell = {"cell_type": kind, "metadata": {"tags": tags} if tags else {}}
        cell["source"] = lines(source)
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    meta = {"kernelspec": KERNEL, "language_info": {"name": "python"}, "nb2prod": SETTINGS}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 4}


if __name__ == "__main__":
    text = json.dumps(notebook(), indent=1) + "\n"
    (HERE / "bookings.ipynb").write_text(text, encoding="utf-8")
