"""Typer command classes that convert ``check``'s values without importing Pydantic.

Typer 0.29 converts a parameter's value the first time it reads one
(``typer/_coercion.py`` ``build_runtime_param``), through a Pydantic ``TypeAdapter``: importing
Pydantic for it costs ~0.23 s, more than everything else ``nb2prod check`` does. ``check``
reads flags and one ``Path``. These classes give such parameters, up front, the conversion
Typer would make for them:

- a ``Path`` goes through Typer's own ``coerce_cli_path`` (exists, file or directory,
  readable, resolve), then ``Path(...)``, which is all Pydantic's ``Path`` validation adds for
  a command-line string;
- a flag's value is a bool already, or ``None`` when absent (``--help``), which Typer passes
  through without converting;
- any other value, and any other type, goes to the conversion Typer builds for it, on demand.

Nothing is parsed here: Typer still parses the command line, checks and reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.core import TyperCommand, TyperGroup

try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - another Typer: its own conversion stays
    RuntimeParam = None


def _on_demand(params: list[Any]) -> None:
    """Give each plain ``Path`` or ``bool`` parameter a conversion that needs no Pydantic."""
    if RuntimeParam is None:  # pragma: no cover
        return
    for param in params:
        desc = getattr(param, "type_descriptor", None)
        info = getattr(desc, "parameter_info", None)
        if info is None or getattr(param, "_runtime_param", True) is not None:
            continue
        if info.parser is None and info.path_type is None and desc.annotation in (Path, bool):
            param._runtime_param = _Cheap(info, desc.annotation, desc)


if RuntimeParam is not None:

    class _Cheap(RuntimeParam):
        """A ``Path`` by Typer's own path check; a bool as is; the rest as Typer converts it."""

        def __init__(self, info: Any, annotation: Any, desc: Any) -> None:
            super().__init__(info, annotation)
            object.__setattr__(self, "_desc", desc)
            object.__setattr__(self, "_typer", None)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.annotation is Path and isinstance(value, str | Path):
                info = self.parameter_info
                return Path(coerce_cli_path(value, info, path_type=None, param=param, ctx=ctx))
            if self.annotation is bool and isinstance(value, bool):
                return value
            if self._typer is None:
                object.__setattr__(self, "_typer", build_runtime_param(self._desc))
            return self._typer._coerce_value(value, param=param, ctx=ctx)


class QuickCommand(TyperCommand):
    """A Typer command whose ``Path`` and flag values are converted without Pydantic."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _on_demand(params)
        return params


class QuickGroup(TyperGroup):
    """The app's group, so its own flags (``--verbose``, ``--help``) need no Pydantic either."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _on_demand(params)
        return params
