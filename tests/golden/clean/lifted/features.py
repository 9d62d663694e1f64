# Generated from clean.ipynb by nb2prod 0.1.0; edit the notebook, not this file.
"""Feature code of clean.ipynb, lifted verbatim; the entry point is `features`."""

from .schema import Feats, Raw

# Imports the lifted cells use, found elsewhere in the notebook.
import pandas as pd  # from cell 2 (id clean-2, untagged)
from pandera.typing import DataFrame  # from cell 3 (id clean-3, nb2prod:schema)


# %% clean.ipynb · cell 4 (clean-4)
# fmt: off
def features(df: DataFrame[Raw]) -> DataFrame[Feats]:
    return pd.DataFrame({"x": df["x"], "is_red": (df["color"] == "red").astype(int)})
# fmt: on
