"""nb2prod: tag a notebook's cells, get a validated, tested, monitored BentoML service.

This module only re-exports the library API (``check``, ``train``, ``build``) and declares the
Jupyter server and lab extensions. Heavy dependencies are imported inside the functions that
use them, so ``import nb2prod`` stays light. ``docs/architecture.md`` maps the packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nb2prod._version import __version__
from nb2prod.builder.pipeline import build
from nb2prod.builder.training import train
from nb2prod.errors import Nb2ProdError
from nb2prod.notebook.check import check

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["Nb2ProdError", "__version__", "build", "check", "train"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nb2prod"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nb2prod"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    from nb2prod.lab.routes import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("nb2prod server extension loaded")
