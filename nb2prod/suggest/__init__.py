"""``nb2prod suggest``: contract cells for an imperative notebook, with a parity report."""

from nb2prod.suggest.accept import apply
from nb2prod.suggest.suggestion import Suggestion, suggest

__all__ = ["Suggestion", "apply", "suggest"]
