"""nb2prod: tag a notebook's cells, get a validated, tested, monitored BentoML service."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Nb2ProdError", "__version__", "build", "check", "train"]

# Light imports: heavy dependencies are imported inside the functions that use them.
# `build` is bound here, eagerly, so that `nb2prod.build` is the function and not the module.
from nb2prod.analysis import check
from nb2prod.build import build
from nb2prod.errors import Nb2ProdError
from nb2prod.training import train


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nb2prod"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nb2prod"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from nb2prod.routes import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("nb2prod server extension loaded")
