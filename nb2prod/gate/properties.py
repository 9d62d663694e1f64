"""The generated properties, in order of diagnosis, and the notebook's settings for them."""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass, field

from nb2prod.errors import NotebookError
from nb2prod.notebook.read import Notebook

DEFAULT_EXAMPLES = 25
DEFAULT_MAX_ROWS = 8


@dataclass(frozen=True)
class Property:
    """One generated property test: its key (``test_<key>``), its name in words, its promise."""

    key: str
    words: str
    promise: str

    @property
    def test(self) -> str:
        return f"test_{self.key}"

    @property
    def doc(self) -> str:
        return f"{self.words[0].upper()}{self.words[1:]}: {self.promise}"

    @property
    def docstring(self) -> str:
        """The test's docstring body: the property's name, then its promise, indented."""
        body = textwrap.wrap(self.promise[0].upper() + self.promise[1:], 92)
        return "\n    ".join([f"{self.words[0].upper()}{self.words[1:]}.", "", *body, ""])


# In order of diagnosis: when several fail, the first is the cause the report leads with
# (a crash fails everything; a random entry point also breaks row independence, ...).
PROPERTIES = (
    Property(
        "no_crash",
        "no crash",
        "the entry point accepts every non-empty frame the input schema accepts, "
        "including single rows and nulls where the schema allows them "
        "(the service answers an empty request without calling it).",
    ),
    Property(
        "input_untouched", "input untouched", "the entry point does not change the caller's frame."
    ),
    Property(
        "rows_kept",
        "rows kept",
        "the entry point returns as many rows as it gets, in the same order, with the same index.",
    ),
    Property(
        "deterministic", "deterministic", "the same input frame always gives the same output."
    ),
    Property(
        "row_independence",
        "row independence",
        "each row's features are the same alone as in a batch: no batch statistics, "
        "which adaptive batching would turn into wrong answers.",
    ),
    Property(
        "output_contract",
        "output contract",
        "the output passes the output schema (when one is declared), has no infinite feature, "
        "and the model takes it, giving one finite prediction per row; also for values at the "
        "schema's bounds and, where it leaves a side open, at extreme values.",
    ),
    Property(
        "service_batch_invariance",
        "service batch invariance",
        "predicting rows in one request equals predicting them one by one, "
        "through the service's own validate -> features -> model path.",
    ),
)
BY_KEY = {p.key: p for p in PROPERTIES}
SETTING_KEYS = ("examples", "max_rows", "skip")


@dataclass(frozen=True)
class PropertySettings:
    """``metadata.nb2prod.properties``: examples per property, rows per frame, skips."""

    examples: int = DEFAULT_EXAMPLES
    max_rows: int = DEFAULT_MAX_ROWS
    skip: dict[str, str] = field(default_factory=dict)


def read_settings(nb: Notebook) -> PropertySettings:
    """Validate ``nb2prod.properties`` in the notebook metadata.

    Raises:
        NotebookError: an unknown key or property, a bad number, or a skip without a reason.
    """
    raw = dict(nb.settings.properties)
    where = f"{nb.path.name}: notebook setting nb2prod.properties"
    unknown = sorted(set(raw) - set(SETTING_KEYS))
    if unknown:
        raise NotebookError(
            f"{where} has unknown key(s) {', '.join(unknown)}; known keys are "
            f"{', '.join(SETTING_KEYS)}.",
            notebook=str(nb.path),
        )
    numbers = {}
    for key, default, low in (("examples", DEFAULT_EXAMPLES, 1), ("max_rows", DEFAULT_MAX_ROWS, 2)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise NotebookError(
                f"{where}.{key} must be a whole number of at least {low}, not {value!r}.",
                notebook=str(nb.path),
            )
        numbers[key] = value
    skip = raw.get("skip", {})
    if not isinstance(skip, dict):
        raise NotebookError(
            f'{where}.skip must map property names to reasons, e.g. {{"deterministic": "why"}}.',
            notebook=str(nb.path),
        )
    for key, reason in skip.items():
        if key not in BY_KEY:
            close = difflib.get_close_matches(str(key), list(BY_KEY), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise NotebookError(
                f"{where}.skip names `{key}`, which is not a property{hint}; the properties are "
                f"{', '.join(BY_KEY)}.",
                notebook=str(nb.path),
            )
        if not isinstance(reason, str) or not reason.strip():
            raise NotebookError(
                f"{where}.skip.{key} needs a reason: say in words why the property does not hold.",
                notebook=str(nb.path),
            )
    return PropertySettings(skip={k: v.strip() for k, v in skip.items()}, **numbers)
