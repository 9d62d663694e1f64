"""``build`` end to end on small fixtures: bento in the store, or nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nb2prod.builder import cache, identity
from nb2prod.builder.pipeline import build
from nb2prod.errors import CheckFailed, GateFailed, TrainingError

pytestmark = pytest.mark.e2e
from nb2prod.notebook.read import read
from tests.support import BIN, CHECK, NOTEBOOKS


def _store_tags() -> set[str]:
    import bentoml

    return {str(b.tag) for b in bentoml.list()} | {str(m.tag) for m in bentoml.models.list()}


def _leftovers(out: Path) -> list[str]:
    """What a build left in ``out``, besides the build cache's index."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name != ".nb2prod-cache")


def test_parameter_used_by_features_is_lifted_as_a_constant(tmp_path: Path) -> None:
    result = build(CHECK / "parameter_lifted.ipynb", {"threshold": 0.2}, out_dir=tmp_path)
    features = (result.build_dir / "src" / "lifted" / "features.py").read_text()
    assert "threshold = 0.2\n" in features
    assert "# %% parameter_lifted.ipynb · cell 4 (parameter_lifted-4)" in features
    import json

    manifest = json.loads((result.build_dir / "src" / "nb2prod.json").read_text())
    assert manifest["lifted_parameters"] == {"threshold": "0.2"}
    assert manifest["parameters"]["seed"] == "0"
    assert result.bento_path.exists() and result.tag in _store_tags()
    assert _leftovers(tmp_path) == sorted([result.bento_path.name, result.build_dir.name])


def test_unchanged_rebuild_has_the_same_version(tmp_path: Path) -> None:
    first = build(CHECK / "clean.ipynb", out_dir=tmp_path)
    second = build(CHECK / "clean.ipynb", out_dir=tmp_path)
    assert second.tag == first.tag and second.cached
    third = build(CHECK / "clean.ipynb", {"seed": 1}, out_dir=tmp_path)
    assert third.version != first.version


def test_training_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    before = _store_tags()
    with pytest.raises(
        TrainingError, match=r"cell 5 \(id train_raises-5, nb2prod:train\) raised"
    ) as info:
        build(CHECK / "train_raises.ipynb", out_dir=tmp_path)
    assert _store_tags() == before
    # only the executed notebook is kept, for the user to open at the failing cell
    assert _leftovers(tmp_path) == ["train_raises.failed.ipynb"]
    assert str(tmp_path / "train_raises.failed.ipynb") in str(info.value)


def test_failed_gate_leaves_nothing_behind(tmp_path: Path) -> None:
    before = _store_tags()
    with pytest.raises(GateFailed, match=r"accuracy = .*, which is not >= 0.999"):
        build(CHECK / "gate_fails.ipynb", out_dir=tmp_path)
    assert _store_tags() == before and _leftovers(tmp_path) == []


def test_check_errors_stop_the_build_before_training(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="uses `scale`"):
        build(CHECK / "closure_untagged_name.ipynb", out_dir=tmp_path)
    assert _leftovers(tmp_path) == []


def test_store_stays_in_the_temporary_home() -> None:
    assert "nb2prod-bentoml-" in os.environ["BENTOML_HOME"]


def test_the_build_writes_to_the_store_bentoml_already_uses(monkeypatch, tmp_path: Path) -> None:
    import bentoml

    from nb2prod.bento import store

    # Given bentoml already in use (it read BENTOML_HOME once), then the variable changing,
    # as it can in a long-lived Jupyter server
    home = os.environ["BENTOML_HOME"]
    bentoml.models.list()
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "elsewhere"))
    # Then the build's writes (its lock, its commit) still go to the store in use
    assert store.home() == Path(home)


def test_an_unchanged_rebuild_is_a_hit_and_a_missing_bento_is_not(churn, monkeypatch) -> None:
    out = churn.result.build_dir.parent
    stages: list[str] = []
    again = build(
        NOTEBOOKS / "churn.ipynb",
        out_dir=out,
        progress=lambda stage, event: stages.append(f"{stage}:{event}"),
    )
    assert again.cached and again.tag == churn.tag
    assert again.metrics == churn.result.metrics and again.bento_path == churn.result.bento_path
    assert "train:done" in stages  # the same progress lines as a full build
    entry = (
        out
        / cache.CACHE_DIR
        / f"{identity.cache_key(read(NOTEBOOKS / 'churn.ipynb'), {}, gate=True)}.json"
    )
    assert entry.exists()

    # Anything the hit relies on that has gone means a real build, never a stale answer.
    monkeypatch.setattr(cache, "_in_store", lambda kind, tag: kind != "bento")
    assert cache.lookup(out, entry.stem) is None
    assert not entry.exists()


def _with_cell(tmp_path: Path, name: str, after_tag: str, source: str) -> Path:
    """clean.ipynb as ``name``, with ``source`` run right after the cell tagged ``after_tag``."""
    import nbformat

    nb = nbformat.read(CHECK / "clean.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if after_tag in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, id=f"{name}-extra"))
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_full_or_unwritable_out_dir_fails_with_one_sentence(tmp_path: Path) -> None:
    import subprocess

    # Given builds whose files cannot all be written: the disk fills (a file size limit:
    # 200 KiB) while papermill writes the executed notebook (300 kB of output), or while
    # the export cell pickles an 800 kB model; and an --out below a plain file
    output = _with_cell(tmp_path, "big_output", "nb2prod:train", 'print("x" * 300_000)')
    model = _with_cell(tmp_path, "big_model", "nb2prod:train", "model.padding_ = np.zeros(100_000)")
    (tmp_path / "file").write_text("x")
    env = {**os.environ, "COLUMNS": "400"}  # Rich wraps at 80 columns otherwise
    runs = {
        name: subprocess.Popen(
            [
                "bash",
                "-c",
                f'ulimit -f {limit} && exec "$@"',
                "-",
                str(BIN / "nb2prod"),
                "build",
                str(notebook),
                "--out",
                str(out),
                "--no-gate",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, notebook, out, limit in (
            ("output", output, tmp_path / "out1", 200),
            ("model", model, tmp_path / "out2", 200),
            ("unwritable", CHECK / "clean.ipynb", tmp_path / "file" / "bentos", "unlimited"),
        )
    }
    stderr = {name: run.communicate(timeout=240)[1] for name, run in runs.items()}
    # Then each is exit 1 and one sentence on stderr (beside the progress lines), that names
    # the file and the reason
    errors = {}
    for name, run in runs.items():
        assert run.returncode == 1, stderr[name]
        assert "Traceback" not in stderr[name], stderr[name]
        # (the build's own sentence; a full disk may also leave MLflow a line on why the
        # failed build was not tracked)
        (errors[name],) = [line for line in stderr[name].splitlines() if line.startswith("error")]
    assert errors["output"].startswith("error: big_output.ipynb: training stopped, writing in ")
    assert f"{tmp_path / 'out1'}/.big_output-" in errors["output"]
    assert "/train failed: File too large (free some space" in errors["output"]
    assert errors["model"].startswith(
        "error: big_model.ipynb: the training run finished but writing its results failed "
        "(OSError: [Errno 27] File too large"
    )
    assert errors["unwritable"] == (
        f"error: Cannot write the build output to {tmp_path / 'file' / 'bentos'}: "
        "Not a directory (choose another folder with --out)."
    )
    # And nothing is left but the executed notebook of the run whose cell failed
    assert _leftovers(tmp_path / "out1") == []
    assert _leftovers(tmp_path / "out2") == ["big_model.failed.ipynb"]
    assert not [t for t in _store_tags() if t.startswith(("big_output", "big_model"))]
