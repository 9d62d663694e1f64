"""The CLI skin: commands listed, exit codes, JSON, and one-sentence errors on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from nb2prod._version import __version__
from nb2prod.builder import pipeline
from nb2prod.cli import app
from tests.support import CHECK, NOTEBOOKS, ROOT

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("check", "train", "build"):
        assert command in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.stdout.strip() == f"nb2prod {__version__}"


def test_check_clean_exits_0_and_errors_exit_1() -> None:
    ok = runner.invoke(app, ["check", str(CHECK / "clean.ipynb")])
    assert ok.exit_code == 0, ok.output
    assert "clean.ipynb: ok" in ok.stdout
    bad = runner.invoke(app, ["check", str(CHECK / "closure_untagged_name.ipynb")])
    assert bad.exit_code == 1
    assert "uses `scale`, which only cell 2" in bad.stdout


def test_warnings_alone_exit_0() -> None:
    result = runner.invoke(app, ["check", str(CHECK / "entrypoint_unannotated.ipynb")])
    assert result.exit_code == 0
    assert "unannotated-entrypoint" in result.stdout


def test_check_json() -> None:
    result = runner.invoke(app, ["check", "--json", str(CHECK / "magic_in_features.ipynb")])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [f["code"] for f in data["findings"]] == ["magic"]
    assert data["findings"][0]["cell_index"] == 4


def test_user_error_is_one_sentence_on_stderr_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.ipynb")])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot read notebook")
    assert "Traceback" not in result.stderr


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--verbose", "check", str(tmp_path / "nope.ipynb")])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr or "FileNotFoundError" in result.stderr


def test_unknown_parameter_is_refused_before_training(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", str(CHECK / "clean.ipynb"), "-p", "thresold", "0.3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "unknown parameter `thresold`" in result.stderr
    assert "did you mean `threshold`? The parameters cell (cell 1 (id " in result.stderr
    assert "parameters)) sets seed, threshold." in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_p_takes_name_and_value_pairs(monkeypatch) -> None:
    seen = {}

    def fake_build(notebook, params, *, out_dir, progress, gate):
        seen.update(params)
        assert gate is True  # the property gate runs unless --no-gate
        raise __import__("nb2prod.errors").errors.GateFailed("stop here")

    monkeypatch.setattr(pipeline, "build", fake_build)
    result = runner.invoke(
        app, ["build", str(CHECK / "clean.ipynb"), "-p", "threshold", "0.25", "-p", "seed", "7"]
    )
    assert result.exit_code == 1 and "stop here" in result.stderr
    assert seen == {"threshold": 0.25, "seed": 7}


def test_no_gate_reaches_the_build(monkeypatch) -> None:
    seen = {}

    def fake_build(notebook, params, *, out_dir, progress, gate):
        seen["gate"] = gate
        raise __import__("nb2prod.errors").errors.GateFailed("stop here")

    monkeypatch.setattr(pipeline, "build", fake_build)
    result = runner.invoke(app, ["build", str(CHECK / "clean.ipynb"), "--no-gate"])
    assert result.exit_code == 1 and "stop here" in result.stderr
    assert seen == {"gate": False}


def test_a_parameter_nested_too_deeply_or_holding_itself_is_one_sentence() -> None:
    for value in ("[" * 100_000, "&a [*a]"):
        result = runner.invoke(app, ["build", str(CHECK / "clean.ipynb"), "-p", "seed", value])
        assert result.exit_code == 1, result.output
        assert "error:" in result.stderr and "Traceback" not in result.output
        assert "nested too deeply" in result.stderr


def test_check_imports_no_heavy_library_and_not_the_builder() -> None:
    # what `nb2prod check` imports, not how long it takes: wall time is in docs/performance.md.
    # Pydantic is what Typer 0.29 converts values with (cli_params.py keeps it out), Rich only
    # prints findings (a clean notebook's line and --json need none), click is vendored by Typer.
    for flags in ([], ["--json"]):
        code = (
            "import sys\n"
            "from nb2prod.cli import app\n"
            "try:\n"
            f"    app(['check', *{flags!r}, {str(NOTEBOOKS / 'churn.ipynb')!r}])\n"
            "except SystemExit as exc:\n"
            "    assert exc.code == 0, exc.code\n"
            "heavy = {'pandas', 'pandera', 'bentoml', 'papermill', 'numpy', 'nbformat', 'sklearn',\n"
            "         'jupytext', 'jinja2', 'hypothesis', 'pydantic', 'pydantic_core', 'rich',\n"
            "         'click'}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
            "             or m.startswith(('nb2prod.builder', 'nb2prod.serving'))))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        assert ('"ok": true' if flags else "churn.ipynb: ok") in done.stdout
        assert done.stdout.splitlines()[-1] == "[]", (flags, done.stdout)


def test_check_with_findings_still_prints_them_with_rich() -> None:
    code = (
        "import sys\n"
        "from nb2prod.cli import app\n"
        "try:\n"
        f"    app(['check', {str(CHECK / 'closure_untagged_name.ipynb')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
        "print('rich' in sys.modules, 'pydantic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "closure_untagged_name.ipynb: failed (1 error(s)" in done.stdout
    assert done.stdout.splitlines()[-1] == "True False", done.stdout
