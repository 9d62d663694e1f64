# Generated from parameter_lifted.ipynb by nb2prod 0.1.0; edit the notebook, not this file.
"""Feature code of parameter_lifted.ipynb, lifted verbatim; the entry point is `features`."""

from .schema import Feats, Raw

# Imports the lifted cells use, found elsewhere in the notebook.
import pandas as pd  # from cell 2 (id parameter_lifted-2, untagged)
from pandera.typing import DataFrame  # from cell 3 (id parameter_lifted-3, nb2prod:schema)

# Parameters the lifted cells use, fixed at their values from the training run.
threshold = 0.5


# %% parameter_lifted.ipynb · cell 4 (parameter_lifted-4)
# fmt: off
def features(df: DataFrame[Raw]) -> DataFrame[Feats]:
    return pd.DataFrame({"x": df["x"].clip(-threshold * 10, threshold * 10), "is_red": (df["color"] == "red").astype(int)})
# fmt: on
