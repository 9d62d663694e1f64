# Generated from parameter_lifted.ipynb by nb2prod 0.1.0; edit the notebook, not this file.
"""Input and output schemas of parameter_lifted.ipynb, lifted verbatim."""

# %% parameter_lifted.ipynb · cell 3 (parameter_lifted-3)
# fmt: off
import pandera.pandas as pa
from pandera.typing import DataFrame, Series


class Raw(pa.DataFrameModel):
    x: Series[float] = pa.Field(ge=-100, le=100)
    color: Series[str] = pa.Field(isin=["red", "blue"])

    class Config:
        coerce = True


class Feats(pa.DataFrameModel):
    x: Series[float]
    is_red: Series[int]
# fmt: on
