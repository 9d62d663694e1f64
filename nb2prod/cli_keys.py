"""``nb2prod keys add|list|revoke``: the serve-time API keys file (``serving/keys.py``).

``cli.py`` registers the group (``KEYS``). The key is printed once, by ``add``; the file holds
only salted scrypt hashes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nb2prod.cli_run import run as _run
from nb2prod.console import console as _console
from nb2prod.errors import KeysError

ENV_FILE = "NB2PROD_API_KEYS_FILE"  # serving/keys.py's ENV_FILE; imported only when used

keys_app = typer.Typer(
    help="API keys for a served bento (NB2PROD_API_KEYS_FILE).", no_args_is_help=True
)

FileOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--file",
        help="The keys file. Default: $NB2PROD_API_KEYS_FILE, else ./nb2prod-keys.json.",
        show_default=False,
    ),
]


def _path(file: Path | None) -> Path:
    return file or Path(os.environ.get(ENV_FILE) or "nb2prod-keys.json")


def _call(call: Callable[[Any], Any]) -> Any:
    from nb2prod.serving import keys

    def wrapped() -> Any:
        try:
            return call(keys)
        except keys.KeyFileError as exc:
            raise KeysError(str(exc)) from None

    return _run(wrapped)


@keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The client's name: it goes into the logs.")],
    file: FileOption = None,
    rate: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--rate", help='This key\'s own limit, e.g. "50/s burst=100".'),
    ] = None,
) -> None:
    """Add a key and print it, once: it is stored only as a salted hash."""
    path = _path(file)
    key = _call(lambda keys: keys.add_key(path, name, rate))
    _console(stderr=True).print(f"added key {name!r} to {path}; it is shown only now:")
    typer.echo(key)


@keys_app.command("list")
def list_(file: FileOption = None) -> None:
    """List the keys' names, when they were made and revoked, and their rates."""
    path = _path(file)
    for entry in _call(lambda keys: keys.list_keys(path)):
        state = f"revoked {entry['revoked']}" if entry["revoked"] else "active"
        rate = f"  rate {entry['rate']}" if entry["rate"] else ""
        typer.echo(f"{entry['name']}\t{state}\tcreated {entry['created']}{rate}")


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    file: FileOption = None,
) -> None:
    """Revoke a key: a served bento refuses it from its next request, without a restart."""
    path = _path(file)
    _call(lambda keys: keys.revoke_key(path, name))
    _console(stderr=True).print(f"revoked key {name!r} in {path}")


KEYS = [(keys_app, {"name": "keys"})]
