"""The one error hierarchy: every failure a user can cause is an ``Nb2ProdError``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nb2prod.notebook.analysis import Finding


class Nb2ProdError(Exception):
    """Base class. ``str()`` is one sentence for a person; fields carry the data."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by ``--json`` output and the server routes."""
        return {"error": type(self).__name__, "message": self.message, **self.fields}


class NotebookError(Nb2ProdError):
    """The notebook cannot be read, or its settings are malformed."""


class TagError(Nb2ProdError):
    """``nb2prod tag`` cannot import a notebook's foreign tags, or cannot write the result."""


class CheckFailed(Nb2ProdError):
    """Static checks found errors; ``findings`` holds them all, the message names the first."""

    def __init__(self, findings: list[Finding]) -> None:
        errors = [f for f in findings if f.severity == "error"]
        more = len(errors) - 1
        extra = f" ({more} more error(s): run nb2prod check)" if more else ""
        super().__init__(errors[0].message + extra)
        self.findings = findings

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "findings": [f.to_dict() for f in self.findings]}


class ParameterError(Nb2ProdError):
    """A parameter is unknown or its value cannot be parsed."""


class TrainingError(Nb2ProdError):
    """The papermill training run failed in a cell."""


class GateFailed(Nb2ProdError):
    """A metric gate from the notebook settings did not hold."""


class EvaluationError(Nb2ProdError):
    """A metric cannot be computed on evaluation data (unknown name, one class, no proba)."""


class PropertyFailed(Nb2ProdError):
    """A generated property test failed; the report is in ``fields['report']``."""


class CodegenError(Nb2ProdError):
    """Generated code did not format or compile (a bug in nb2prod or the notebook)."""


class CompileError(Nb2ProdError):
    """``serving.runtime: compiled``, and the model cannot serve compiled (the reason says why)."""


class BentoError(Nb2ProdError):
    """Saving the model, building or exporting the bento failed."""


class MonitorError(Nb2ProdError):
    """Monitoring input is bad (missing file, wrong format, schema violations)."""

    exit_code = 2


class RebuildError(Nb2ProdError):
    """``nb2prod rebuild`` cannot rebuild a bento: its notebook is not found, or not usable."""


class ShadowError(Nb2ProdError):
    """``nb2prod shadow`` or a replay got bad input (traffic, bento, schemas that differ)."""

    exit_code = 2


class ScoreError(Nb2ProdError):
    """``nb2prod score`` got bad arguments or input it cannot read (the file or column named)."""

    exit_code = 2


class SparkError(Nb2ProdError):
    """``nb2prod score --engine spark``: no usable Java, Spark did not start, or the job failed."""


class RegistryError(Nb2ProdError):
    """The MLflow registry cannot answer: an unknown name, alias or version, a store that
    cannot be reached, or an alias that would point at a bento not in the store."""


class KeysError(Nb2ProdError):
    """``nb2prod keys`` cannot read or change the keys file, or a name or rate is malformed."""


class BuildInProgress(Nb2ProdError):
    """A build of the same notebook is already running."""

    http_status = 409


class RequestError(Nb2ProdError):
    """A request the Jupyter routes refuse before calling the library (bad body, bad path)."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


class InternalError(Nb2ProdError):
    """Something failed that no user input explains: a bug in nb2prod, reported as one."""

    http_status = 500

    @classmethod
    def wrapping(cls, exc: BaseException, where: str) -> InternalError:
        return cls(
            f"{where} failed unexpectedly ({type(exc).__name__}: {exc}); "
            "the Jupyter server log has the traceback."
        )


class BentoNotFound(Nb2ProdError):
    """A command was given a bento that is not there, or not one nb2prod made."""

    exit_code = 2


class ReferenceInvalid(Nb2ProdError):
    """The training reference data fails the notebook's own input schema (found at build)."""


class SuggestError(Nb2ProdError):
    """``nb2prod suggest`` cannot lift the notebook's feature cells; the message says where."""


class PromotionError(Nb2ProdError):
    """``nb2prod promote``/``rollback`` refused to move an alias; the figures are in fields."""
