"""One library call from a command: an ``Nb2ProdError`` becomes one sentence on stderr and
its exit code; the traceback only with ``--verbose`` (``state``, set by ``cli.main``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import typer

from nb2prod.console import console
from nb2prod.errors import Nb2ProdError

state = {"verbose": False}


def run(call: Callable[[], Any]) -> Any:
    """Run one library call; turn an ``Nb2ProdError`` into a sentence on stderr and its exit code."""
    try:
        return call()
    except Nb2ProdError as exc:
        if state["verbose"]:
            logging.getLogger("nb2prod").exception("failed")
        report = exc.fields.get("report")
        if report:
            sys.stderr.write(str(report).rstrip() + "\n")
        console(stderr=True).print(f"[bold red]error:[/] {exc}", markup=True)
        raise typer.Exit(exc.exit_code) from None
