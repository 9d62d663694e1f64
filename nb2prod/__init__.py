"""nb2prod: tag a notebook's cells, get a validated, tested, monitored BentoML service.

This module only re-exports the library API (``check``, ``train``, ``build``) and declares the
Jupyter server and lab extensions. Heavy dependencies are imported inside the functions that
use them, so ``import nb2prod`` stays light. The re-exports load on first use (PEP 562), so
``import nb2prod.notebook.check`` (the CLI's ``check``) does not import the builder.
``docs/architecture.md`` maps the packages.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from nb2prod._version import __version__
from nb2prod.errors import Nb2ProdError

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

    from nb2prod.builder.pipeline import build
    from nb2prod.builder.training import train
    from nb2prod.notebook.check import check

__all__ = ["Nb2ProdError", "__version__", "build", "check", "train"]
_LAZY = {
    "build": "nb2prod.builder.pipeline",
    "train": "nb2prod.builder.training",
    "check": "nb2prod.notebook.check",
}


def __getattr__(name: str) -> Any:
    """``nb2prod.build`` and friends: import the defining module on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'nb2prod' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nb2prod"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nb2prod"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    from nb2prod.lab.routes import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("nb2prod server extension loaded")
