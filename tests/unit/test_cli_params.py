"""cli_params: a command converted without Pydantic answers exactly as Typer's own does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from nb2prod.cli_params import QuickCommand, QuickGroup

runner = CliRunner()


def app_with(group: type[TyperGroup], command: type[TyperCommand]) -> typer.Typer:
    """The same small app, with the given group and command classes: it echoes what it got."""
    app = typer.Typer(cls=group, add_completion=False)

    @app.callback()
    def main(loud: Annotated[bool, typer.Option("--loud")] = False) -> None:
        typer.echo(f"loud={loud!r}")

    @app.command(cls=command)
    def run(
        src: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
        out: Annotated[Optional[Path], typer.Option("--out")] = None,  # noqa: UP045
        real: Annotated[Path, typer.Option("--real", resolve_path=True)] = Path("."),
        flag: Annotated[bool, typer.Option("--flag/--no-flag", envvar="QUICK_FLAG")] = False,
        count: Annotated[int, typer.Option("--count", min=1)] = 1,
    ) -> None:
        for value in (src, out, real, flag, count):
            typer.echo(f"{type(value).__name__} {value}")

    return app


def test_every_value_and_every_refusal_is_typers_own(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "d").mkdir()
    cases = [
        ["run", "a.txt"],
        ["--loud", "run", "a.txt", "--out", "o/p.ipynb", "--real", "d/..", "--flag"],
        ["run", "a.txt", "--count", "3", "--no-flag"],
        ["run", "missing.txt"],  # exists=True: Typer's "does not exist"
        ["run", "d"],  # dir_okay=False: Typer's "is a directory"
        ["run", "a.txt", "--count", "0"],  # min=1: Typer's range error
        ["run", "a.txt", "--count", "many"],  # not an int
        ["run", "--help"],
        ["run"],  # missing argument
    ]
    plain, quick = app_with(TyperGroup, TyperCommand), app_with(QuickGroup, QuickCommand)
    for args in cases:
        want, got = runner.invoke(plain, args), runner.invoke(quick, args)
        assert (got.exit_code, got.stdout, got.stderr) == (
            want.exit_code,
            want.stdout,
            want.stderr,
        ), args
    refused = runner.invoke(quick, ["run", "missing.txt"])
    assert refused.exit_code == 2 and "does not exist" in refused.stderr
    ok = runner.invoke(quick, ["--loud", "run", "a.txt", "--real", "d/.."])
    assert ok.stdout.splitlines()[:2] == ["loud=True", "PosixPath a.txt"]
    assert f"PosixPath {tmp_path.resolve()}" in ok.stdout


def test_a_flag_from_the_environment_still_goes_through_typer(tmp_path, monkeypatch) -> None:
    # a string reaches a bool flag only from an environment variable: Typer converts it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    monkeypatch.setenv("QUICK_FLAG", "yes")
    for app in (app_with(TyperGroup, TyperCommand), app_with(QuickGroup, QuickCommand)):
        result = runner.invoke(app, ["run", "a.txt"])
        assert result.exit_code == 0, result.output
        assert "bool True" in result.stdout
