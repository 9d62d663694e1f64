"""Reading notebooks: roles from tags and ``#|`` lines, settings, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nb2prod.errors import NotebookError
from nb2prod.notebook.read import normalize_name, parse, read


def _nb(cells: list[dict], metadata: dict | None = None) -> str:
    for i, cell in enumerate(cells):
        cell.setdefault("cell_type", "code")
        cell.setdefault("id", f"id{i}")
        cell.setdefault("metadata", {})
    return json.dumps(
        {"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}
    )


def test_roles_come_from_tags_and_comment_lines() -> None:
    text = _nb(
        [
            {"source": "a = 1", "metadata": {"tags": ["parameters"]}},
            {"source": "#| nb2prod: schema\nx = 1"},
            {"source": ["#| nb2prod: nb2prod:features\n", "y = 2"]},
            {"source": "z = 3", "metadata": {"tags": ["nb2prod:train", "slow"]}},
            {"source": "# just a comment"},
            {"cell_type": "markdown", "source": "# title"},
            {"source": "w = 4", "metadata": {"tags": ["nb2prod:skip"]}},
        ]
    )
    nb = parse(text, Path("demo.ipynb"))
    assert [(c.index, c.role) for c in nb.cells] == [
        (0, "parameters"),
        (1, "schema"),
        (2, "features"),
        (3, "train"),
        (4, None),
        (6, "skip"),
    ]
    assert nb.cells[1].where == "cell 1 (id id1, nb2prod:schema)"


def test_two_roles_on_one_cell_are_kept_as_a_conflict() -> None:
    nb = parse(
        _nb([{"source": "#| nb2prod: train\nx=1", "metadata": {"tags": ["nb2prod:evaluate"]}}]),
        Path("n.ipynb"),
    )
    assert nb.cells[0].role == "evaluate"
    assert nb.cells[0].conflicting_roles == ("train",)


def test_settings_defaults_and_name_normalization() -> None:
    nb = parse(_nb([]), Path("My Churn Model v2.ipynb"))
    assert nb.settings.name == "my_churn_model_v2"
    assert (nb.settings.entrypoint, nb.settings.model, nb.settings.reference) == (
        "features",
        "model",
        "X_train",
    )
    assert normalize_name("  --  ") == "model"


def test_unknown_setting_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="unknown setting\\(s\\) entry_point"):
        parse(_nb([], {"nb2prod": {"entry_point": "f"}}), tmp_path / "n.ipynb")


def test_missing_file_and_non_notebook_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match=r"^Cannot read notebook .*missing.ipynb: No such file"):
        read(tmp_path / "missing.ipynb")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotebookError, match="is not a readable Jupyter notebook"):
        read(bad)
    old = tmp_path / "old.ipynb"
    old.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 3}))
    with pytest.raises(NotebookError, match="format 3"):
        read(old)
