"""Reading notebooks: roles from tags and ``#|`` lines, settings, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nb2prod.errors import NotebookError
from nb2prod.notebook.check import check
from nb2prod.notebook.read import normalize_name, parse, read
from tests.support import CHECK

MALFORMED = CHECK / "malformed"


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


# fixture in tests/fixtures/check/malformed -> (what the one sentence says, the cell it names)
REFUSED = {
    "cell_not_an_object": (r"malformed/cell_not_an_object.ipynb: cell 1 is a number, not a ", 1),
    "metadata_a_list": (r": its metadata is a list, not an object\.$", None),
    "cell_metadata_a_list": (r": cell 1 \(id clean-1\): its metadata is a list, not an", 1),
    "tags_a_string": (r": cell 1 \(id clean-1\): its metadata.tags must be a list of strings", 1),
    "nbformat_a_string": (
        r" has nbformat '4'; nb2prod reads notebook format 4 \(the number\)",
        None,
    ),
    "source_ints": (r": cell 1 \(id clean-1\): line 0 of its source is a number, not text\.$", 1),
    "settings_a_list": (
        r": notebook metadata nb2prod must be a mapping of settings, not a list",
        None,
    ),
    "lone_surrogate": (r": cell 1 holds text that is not valid Unicode\.$", None),
    "deep_json": (r": its JSON is nested more than 100 levels deep\.$", None),
    "not_an_object": (r" is not a Jupyter notebook: its JSON is a list\.$", None),
    "latin_1": (r" is not UTF-8 text \(byte 0xe9 at offset 107\); notebooks are UTF-8 JSON", None),
    "utf_16": (
        r" is saved as UTF-16, but notebooks are UTF-8 JSON .*`iconv -f UTF-16 -t UTF-8`",
        None,
    ),
    "format_3": (
        (
            r" uses notebook format 3, which nb2prod does not read; upgrade it to format 4 with "
            r"`jupyter nbconvert --to notebook --nbformat 4 --inplace format_3.ipynb`, or open"
        ),
        None,
    ),
}


def test_every_malformed_fixture_has_its_expected_sentence() -> None:
    assert sorted(p.stem for p in MALFORMED.glob("*.ipynb")) == sorted(REFUSED)


@pytest.mark.parametrize("fixture", sorted(REFUSED))
def test_a_malformed_notebook_is_one_sentence_naming_file_and_cell(fixture: str) -> None:
    # Given a notebook of a shape nbformat would refuse
    path = MALFORMED / f"{fixture}.ipynb"
    # When it is checked
    with pytest.raises(NotebookError) as refused:
        check(path)
    # Then the error is one sentence naming the file, and the cell where there is one
    pattern, cell = REFUSED[fixture]
    message = str(refused.value)
    assert message.startswith(str(path)) and "\n" not in message and message.endswith(".")
    assert refused.value.fields.get("cell_index") == cell
    assert re.search(pattern, message), message


@pytest.mark.parametrize(
    "fixture", sorted(f for f in REFUSED if f not in ("latin_1", "utf_16", "deep_json"))
)
def test_the_editor_s_content_gets_the_same_sentence(fixture: str) -> None:
    # Given the same shapes as an editor holds them (JSON already parsed)
    path = MALFORMED / f"{fixture}.ipynb"
    with pytest.raises(NotebookError) as from_file:
        check(path)
    with pytest.raises(NotebookError) as from_content:
        check(path, json.loads(path.read_text()))
    assert str(from_content.value) == str(from_file.value)


def test_content_nested_too_deeply_for_json_is_refused(tmp_path: Path) -> None:
    content: list = []
    for _ in range(5000):  # deeper than json.dumps can go
        content = [content]
    with pytest.raises(NotebookError, match="nested more than 100 levels deep"):
        check(tmp_path / "n.ipynb", {"cells": [], "metadata": {"deep": content}})


def test_a_symlink_loop_and_a_name_too_long_are_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "a.ipynb").symlink_to(tmp_path / "b.ipynb")
    (tmp_path / "b.ipynb").symlink_to(tmp_path / "a.ipynb")
    with pytest.raises(NotebookError, match=r"a.ipynb: Too many levels of symbolic links\.$"):
        check(tmp_path / "a.ipynb")
    with pytest.raises(NotebookError, match=r"…a+\.ipynb: File name too long\.$") as long:
        check(tmp_path / ("a" * 5000 + ".ipynb"))
    assert len(str(long.value)) < 200  # the name is cut in the middle


def test_a_utf_8_byte_order_mark_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bom.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + (CHECK / "clean.ipynb").read_bytes())
    with pytest.raises(NotebookError, match="starts with a byte-order mark"):
        read(path)


def test_shapes_nbformat_allows_are_normalized_once(tmp_path: Path) -> None:
    # Given a notebook with list sources, no metadata anywhere, and no nbformat at all
    body = {"cells": [{"cell_type": "code", "source": ["a = 1\n", "b = 2"]}]}
    nb = parse(json.dumps(body), tmp_path / "n.ipynb")
    # Then later code meets one shape: text sources and metadata dicts, in the node too
    assert nb.cells[0].source == "a = 1\nb = 2"
    assert nb.node["cells"][0]["source"] == "a = 1\nb = 2"
    assert nb.node["cells"][0]["metadata"] == {} and nb.node["metadata"] == {}


def test_a_bad_cell_id_never_becomes_the_cell_s_id(tmp_path: Path) -> None:
    # Given ids that break nbformat's pattern, and a 4.4 notebook with no ids at all
    bad = ["a\nimport os", "x y", "it's", "", "x" * 65, 7, None]
    text = _nb([{"source": "x = 1", "id": cell_id} for cell_id in bad])
    old = json.loads(_nb([{"source": "x = 1"}]))
    del old["cells"][0]["id"]
    old["nbformat_minor"] = 4
    # When they are read
    cells = parse(text, tmp_path / "n.ipynb").cells
    (plain,) = parse(json.dumps(old), tmp_path / "old.ipynb").cells
    # Then each bad id is kept for check to report, and the cell is named by its index
    assert [c.id for c in cells] == [f"index-{i}" for i in range(len(bad))]
    assert [c.bad_id for c in cells] == [repr(b) for b in bad]
    assert (plain.id, plain.bad_id) == ("index-0", None)


SECONDS = "a positive whole number of seconds (per cell)"
NAME = "the name of a Python variable (a string such as 'model')"


@pytest.mark.parametrize(
    ("key", "value", "should"),
    [
        ("timeout", "soon", SECONDS),
        ("timeout", 0, SECONDS),
        ("timeout", True, SECONDS),
        ("timeout", 2.5, SECONDS),
        ("entrypoint", "make features", NAME),
        ("entrypoint", 5, NAME),
        ("model", "class", NAME),
        ("reference", ["X_train"], NAME),
        ("metrics", None, NAME),
        ("input_schema", "Raw()", NAME),
        ("name", 5, "a string"),
        ("gates", ["accuracy >= 0.9"], "a mapping"),
        ("monitoring", "on", "a mapping"),
        ("properties", 1, "a mapping"),
        ("coercion", "loose", "'strict' or 'lenient'"),
        ("learned", "FARE_MEDIAN", "a list of Python variable names (such as ['FARE_MEDIAN'])"),
        ("learned", ["FARE MEDIAN"], "a list of Python variable names (such as ['FARE_MEDIAN'])"),
        ("learned", ["class"], "a list of Python variable names (such as ['FARE_MEDIAN'])"),
    ],
)
def test_a_setting_of_the_wrong_type_is_a_problem_and_keeps_its_default(
    tmp_path: Path, key: str, value: object, should: str
) -> None:
    nb = parse(_nb([], {"nb2prod": {key: value}}), tmp_path / "n.ipynb")
    (problem,) = nb.problems
    assert problem.key == key
    assert problem.message == (
        f"n.ipynb: notebook setting nb2prod.{key} must be {should}, not {value!r}."
    )
    default = parse(_nb([]), tmp_path / "n.ipynb").settings
    assert getattr(nb.settings, key) == getattr(default, key)


def test_good_settings_pass_and_a_whole_float_timeout_is_an_int(tmp_path: Path) -> None:
    good = {"timeout": 30.0, "input_schema": None, "entrypoint": "make", "name": "x"}
    nb = parse(_nb([], {"nb2prod": good}), tmp_path / "n.ipynb")
    assert nb.problems == ()
    assert nb.settings.timeout == 30 and isinstance(nb.settings.timeout, int)


def test_a_name_from_a_long_file_stem_fits_a_bentoml_tag() -> None:
    # BentoML refused the 80-character name only after training ("Invalid Tag")
    name = normalize_name("a very long notebook name " * 4)
    assert len(name) <= 57 and not name.endswith("_")
    assert name.startswith("a_very_long_notebook_name_")


def test_a_name_setting_too_long_for_a_tag_is_a_finding(tmp_path: Path) -> None:
    node = json.loads((CHECK / "clean.ipynb").read_text())
    node["metadata"]["nb2prod"] = {"name": "x" * 60}
    path = tmp_path / "clean.ipynb"
    path.write_text(json.dumps(node))
    checked = check(path)
    assert [(f.code, f.name) for f in checked.findings] == [("bad-setting", "nb2prod.name")]
    assert "at most 57 characters" in checked.findings[0].message


def test_learned_is_a_tuple_of_names_without_repeats(tmp_path: Path) -> None:
    meta = {"nb2prod": {"learned": ["FARE_MEDIAN", "AGE_MEAN", "FARE_MEDIAN"]}}
    nb = parse(_nb([], meta), tmp_path / "n.ipynb")
    assert nb.problems == ()
    assert nb.settings.learned == ("FARE_MEDIAN", "AGE_MEAN")
    assert parse(_nb([]), tmp_path / "n.ipynb").settings.learned == ()
