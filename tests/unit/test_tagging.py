"""``nb2prod tag``: foreign tags imported as roles, the file written only when asked, and check
clean afterwards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nb2prod.cli import app
from nb2prod.errors import TagError
from nb2prod.notebook.check import check
from nb2prod.notebook.read import read
from nb2prod.notebook.tagging import import_tags, plan, tag_file
from tests.support import CHECK, FIXTURES

FOREIGN = FIXTURES / "foreign"
runner = CliRunner()


def copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copy(FOREIGN / f"{name}.ipynb", tmp_path / f"{name}.ipynb"))


def roles_of(name: str, source: str = "auto") -> dict[int, str]:
    return plan(read(FOREIGN / f"{name}.ipynb"), source)[0]


def test_kale_mapping() -> None:
    assert roles_of("kale_pipeline") == {
        3: "parameters",
        6: "skip",
        7: "train",
        8: "evaluate",
        9: "evaluate",
    }
    _, report = plan(read(FOREIGN / "kale_pipeline.ipynb"), "kale")
    assert report.dialect == "kale"
    assert {m.cell_index for m in report.mapped if m.role is None} == {1, 2, 4, 5}
    assert [(u.cell_index, u.written) for u in report.unmapped] == [
        (5, "prev:load_data"),
        (7, "prev:features"),
        (7, "limit:nvidia.com/gpu:1"),
        (8, "prev:train"),
    ]


def test_nbdev_mapping_takes_the_entry_point_and_what_it_uses() -> None:
    assert roles_of("nbdev_module") == {5: "features", 6: "features", 7: "features"}
    _, report = plan(read(FOREIGN / "nbdev_module.ipynb"))
    assert [(u.cell_index, u.reason) for u in report.unmapped] == [
        (4, "already tagged nb2prod:schema")
    ]


def test_auto_applies_both_dialects_and_each_one_alone_only_its_own() -> None:
    assert roles_of("kale_and_nbdev") == {2: "features", 3: "skip", 4: "train"}
    assert roles_of("kale_and_nbdev", "kale") == {3: "skip", 4: "train"}
    assert roles_of("kale_and_nbdev", "nbdev") == {2: "features"}
    _, report = plan(read(FOREIGN / "kale_and_nbdev.ipynb"))
    assert report.dialect == "kale+nbdev"
    hide = next(u for u in report.unmapped if u.written == "#| hide")
    assert "takes nb2prod:skip from `skip`" in hide.reason


def test_a_cell_with_a_role_keeps_it() -> None:
    assert roles_of("kale_tagged_by_hand") == {3: "skip"}
    _, report = plan(read(FOREIGN / "kale_tagged_by_hand.ipynb"))
    assert [(u.cell_index, u.written, u.reason) for u in report.unmapped] == [
        (2, "step:train", "already tagged nb2prod:train")
    ]


def test_import_tags_returns_json_and_changes_nothing() -> None:
    nb = read(FOREIGN / "kale_pipeline.ipynb")
    before = json.dumps(nb.node)
    node, report = import_tags(nb, "kale")
    assert json.dumps(nb.node) == before
    assert node["cells"][6]["metadata"]["tags"] == ["skip", "nb2prod:skip"]
    assert node["cells"][3]["metadata"]["tags"] == ["pipeline-parameters", "parameters"]
    assert [m.cell_index for m in report.tagged] == [3, 6, 7, 8, 9]
    assert json.loads(json.dumps(report.to_dict()))["mapped"][2]["tag"] == "parameters"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = copy(tmp_path, "kale_pipeline")
    before = path.read_bytes()
    report = tag_file(path, "kale")
    assert report.written is None and report.tagged
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kale_pipeline.ipynb"]


def test_in_place_keeps_the_format_the_foreign_tags_and_every_other_byte(tmp_path: Path) -> None:
    path = copy(tmp_path, "kale_pipeline")
    original = json.loads(path.read_text())
    os.chmod(path, 0o640)
    report = tag_file(path, "kale", in_place=True)
    assert report.written == path
    tagged = json.loads(path.read_text())
    assert (tagged["nbformat"], tagged["nbformat_minor"]) == (4, 4)
    assert not any("id" in cell for cell in tagged["cells"])
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    for index, (old, new) in enumerate(zip(original["cells"], tagged["cells"], strict=True)):
        old_tags, new_tags = old["metadata"].pop("tags", []), new["metadata"].pop("tags", [])
        assert new_tags[: len(old_tags)] == old_tags, index  # never removed, never reordered
        assert old == new, index  # sources still line lists, outputs and metadata as they were
    assert {k: v for k, v in original.items() if k != "cells"} == {
        k: v for k, v in tagged.items() if k != "cells"
    }
    assert path.read_text().endswith("}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kale_pipeline.ipynb"]  # no temp left


def test_tagging_twice_gives_the_same_file(tmp_path: Path) -> None:
    path = copy(tmp_path, "kale_and_nbdev")
    tag_file(path, in_place=True)
    once = path.read_bytes()
    again = tag_file(path, in_place=True)
    assert path.read_bytes() == once
    assert again.tagged == [] and again.written is None
    out = tmp_path / "copy.ipynb"
    tag_file(path, out=out)
    assert out.read_bytes() == once


def test_out_writes_a_copy_and_overwrites_it(tmp_path: Path) -> None:
    path = copy(tmp_path, "nbdev_module")
    before = path.read_bytes()
    out = tmp_path / "tagged.ipynb"
    out.write_text("old")
    report = tag_file(path, out=out)
    assert report.written == out and path.read_bytes() == before
    node = json.loads(out.read_text())
    assert node["nbformat_minor"] == 5
    assert node["cells"][7]["metadata"]["tags"] == ["nb2prod:features"]
    assert node["cells"][7]["source"][0] == "#| export\n"  # the directive stays


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"out": "x.ipynb", "in_place": True}, "not both"),
        ({"source": "papermill"}, "unknown tag dialect 'papermill'"),
        ({"out": "tagged.json"}, "is not one"),
        ({"out": "missing/tagged.ipynb"}, "Cannot write"),
        ({"source": "nbdev"}, "has no nbdev tags to import"),
    ],
)
def test_user_errors_are_one_sentence_and_write_nothing(
    tmp_path: Path, kwargs: dict, says: str
) -> None:
    path = copy(tmp_path, "kale_pipeline")
    before = path.read_bytes()
    if "out" in kwargs:
        kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(TagError, match=says):
        tag_file(path, **kwargs)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kale_pipeline.ipynb"]


def test_no_tags_of_the_asked_dialect_names_the_one_present() -> None:
    with pytest.raises(TagError, match="has no Kale tags .* use --from nbdev"):
        tag_file(FOREIGN / "nbdev_module.ipynb", "kale")
    with pytest.raises(TagError, match="clean.ipynb has no Kale or nbdev tags"):
        tag_file(CHECK / "clean.ipynb")


def foreign(path: Path) -> list[tuple[int | None, str]]:
    return [(f.cell_index, f.severity) for f in check(path).findings if f.code == "foreign-tags"]


@pytest.mark.parametrize(
    ("name", "left"),
    [
        ("kale_pipeline", []),
        ("nbdev_module", []),
        ("kale_and_nbdev", []),
        ("kale_model_fit_call", []),
        ("kale_tagged_by_hand", []),
        # no cell gains a role, so nothing is written and every directive is still reported
        ("nbdev_directive_forms", [(i, "warning") for i in range(8)]),
        # only what the import could not understand stays, as a warning
        ("kale_parameters_twice", [(3, "warning")]),
        ("kale_prev_without_step", [(0, "warning")]),
    ],
)
def test_check_is_clean_of_foreign_tags_after_the_import(
    tmp_path: Path, name: str, left: list
) -> None:
    path = copy(tmp_path, name)
    assert foreign(path)  # reported before
    report = tag_file(path, in_place=True)
    assert (report.written is None) == (not report.tagged)  # in place: written on a change
    assert foreign(path) == left


def test_the_nbdev_notebook_checks_ok_after_the_import(tmp_path: Path) -> None:
    path = copy(tmp_path, "nbdev_module")
    assert not check(path).ok  # no entry point tagged: ambiguous input schema
    tag_file(path, in_place=True)
    result = check(path)
    assert result.ok, [f.message for f in result.findings]
    assert result.plan.entrypoint == "features"
    assert [c.index for c in result.plan.feature_cells] == [5, 6, 7]


def test_cli_dry_run_prints_the_table_and_the_flag_that_writes(tmp_path: Path) -> None:
    path = copy(tmp_path, "kale_pipeline")
    before = path.read_bytes()
    result = runner.invoke(app, ["tag", str(path), "--from", "kale"])
    assert result.exit_code == 0, result.output
    assert "nb2prod:skip" in result.stdout and "pipeline-parameters" in result.stdout
    assert "5 cell(s) tagged, 4 tag(s) not mapped" in result.stdout
    assert "dry run: nothing written; --in-place" in result.stdout
    assert path.read_bytes() == before


def test_cli_in_place_and_json(tmp_path: Path) -> None:
    path = copy(tmp_path, "kale_pipeline")
    result = runner.invoke(app, ["tag", str(path), "--in-place", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["written"] == str(path) and data["dialect"] == "kale"
    assert [m["tag"] for m in data["mapped"] if m["tag"]] == [
        "parameters",
        "nb2prod:skip",
        "nb2prod:train",
        "nb2prod:evaluate",
        "nb2prod:evaluate",
    ]
    assert runner.invoke(app, ["check", str(path)]).stdout.count("foreign-tags") == 0


def test_cli_user_error_is_one_line_on_stderr_exit_1(tmp_path: Path) -> None:
    path = copy(tmp_path, "kale_pipeline")
    result = runner.invoke(app, ["tag", str(path), "--in-place", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Pass --out PATH or --in-place")


def _kale_notebook(tmp_path: Path, train_step: str, features_step: str) -> Path:
    def cell(source: str, tags: list[str]) -> dict:
        return {
            "cell_type": "code",
            "metadata": {"tags": tags},
            "source": source,
            "outputs": [],
            "execution_count": None,
        }

    node = {
        "nbformat": 4,
        "nbformat_minor": 4,
        "metadata": {},
        "cells": [
            cell(
                "import pandas as pd\nfrom sklearn.preprocessing import StandardScaler\n"
                "from sklearn.ensemble import RandomForestClassifier",
                ["imports"],
            ),
            cell('df = pd.read_csv("train.csv")\nX_train = df.drop(columns=["y"])', ["block:load"]),
            cell(features_step, ["block:scale", "prev:load"]),
            cell(train_step, ["block:train", "prev:scale"]),
            cell("acc = (rf.predict(X_train) == df['y']).mean()", ["pipeline-metrics"]),
        ],
    }
    path = tmp_path / "steps.ipynb"
    path.write_text(json.dumps(node))
    return path


def test_a_training_step_fitting_another_name_is_train_and_sets_the_model(tmp_path: Path) -> None:
    # Given Kale steps where a scaler is fitted in one and `rf`, later used to predict, in another
    path = _kale_notebook(
        tmp_path,
        train_step="rf = RandomForestClassifier()\nrf.fit(scaler.transform(X_train), df['y'])",
        features_step="scaler = StandardScaler().fit(X_train)",
    )
    # When the Kale tags are imported
    node, report = import_tags(read(path), "kale")
    # Then the step that fits the predicting estimator is the train cell and nb2prod.model
    # names it; the scaler's step stays training code
    roles = {m.cell_index: m.role for m in report.mapped}
    assert roles[3] == "train" and roles[2] is None
    assert report.settings == {"model": "rf"}
    assert node["metadata"]["nb2prod"] == {"model": "rf"}
    assert "nb2prod.model is set to `rf`" in next(
        m.reason for m in report.mapped if m.role == "train"
    )


def test_a_model_setting_the_notebook_has_is_never_overwritten(tmp_path: Path) -> None:
    path = _kale_notebook(
        tmp_path,
        train_step="rf = RandomForestClassifier()\nrf.fit(X_train, df['y'])",
        features_step="scaler = StandardScaler().fit(X_train)",
    )
    node = json.loads(path.read_text())
    node["metadata"]["nb2prod"] = {"model": "clf"}
    path.write_text(json.dumps(node))
    _, report = import_tags(read(path), "kale")
    assert report.settings == {} and all(m.role != "train" for m in report.mapped)
