"""Foreign tags: Kale tags and nbdev directives found, read as roles, and reported by check."""

from __future__ import annotations

import pytest

from nb2prod.notebook.check import check
from nb2prod.notebook.foreign import detect, findings, lead, read_tags
from nb2prod.notebook.read import read
from tests.support import CHECK, FIXTURES

FOREIGN = FIXTURES / "foreign"


def test_detect_finds_every_kale_tag_in_cell_order() -> None:
    tags = detect(read(FOREIGN / "kale_pipeline.ipynb"))
    assert [(t.cell_index, t.written) for t in tags] == [
        (1, "imports"),
        (2, "functions"),
        (3, "pipeline-parameters"),
        (4, "block:load_data"),
        (5, "step:features"),
        (5, "prev:load_data"),
        (6, "skip"),
        (7, "step:train"),
        (7, "prev:features"),
        (7, "limit:nvidia.com/gpu:1"),
        (8, "step:evaluate"),
        (8, "prev:train"),
        (9, "pipeline-metrics"),
    ]
    assert {t.dialect for t in tags} == {"kale"}
    # nbformat 4.4 has no ids: the id every message uses is the index one
    assert tags[0].cell_id == "index-1" and tags[0].line is None


def test_detect_reads_every_nbdev_directive_form_and_no_comment() -> None:
    tags = detect(read(FOREIGN / "nbdev_directive_forms.ipynb"))
    assert [(t.cell_index, t.line, t.written) for t in tags] == [
        (0, 1, "#export"),
        (1, 1, "# export"),
        (2, 1, "#|export"),
        (3, 1, "#| exports"),
        (4, 1, "#| exporti"),
        (5, 1, "#hide"),
        (6, 1, "# default_exp core"),
        (7, 1, "#| hide"),
        (7, 2, "#| export core"),
    ]
    assert tags[0].cell_id == "nbdev_directive_forms-0" and tags[0].dialect == "nbdev"


def test_a_notebook_without_foreign_tags_has_no_findings() -> None:
    nb = read(CHECK / "clean.ipynb")
    assert detect(nb) == [] and findings(nb) == []


def _reading(fixture: str, cell: int):
    return lead(read_tags(read(FOREIGN / f"{fixture}.ipynb"))[cell])


@pytest.mark.parametrize(
    ("fixture", "cell", "kind", "role", "says"),
    [
        ("kale_pipeline", 1, "untagged", None, "lifts any import that lifted code uses"),
        ("kale_pipeline", 2, "untagged", None, "a function the entry point calls belongs"),
        ("kale_pipeline", 3, "role", "parameters", "-p NAME VALUE"),
        ("kale_pipeline", 4, "untagged", None, "neither fits `model` nor sets `metrics`"),
        ("kale_pipeline", 5, "untagged", None, "`nb2prod suggest` lifts feature engineering"),
        ("kale_pipeline", 6, "role", "skip", "out of the pipeline"),
        ("kale_pipeline", 7, "role", "train", "the step fits `model`"),
        ("kale_pipeline", 8, "role", "evaluate", "the step assigns `metrics`"),
        ("kale_pipeline", 9, "role", "evaluate", "make this cell assign it"),
        ("kale_fit_and_metrics", 1, "untagged", None, "the step loads data"),
        ("kale_fit_and_metrics", 2, "role", "train", "nb2prod:evaluate could not be split off"),
        ("kale_model_fit_call", 1, "untagged", None, "neither fits"),  # model = X(), no fit
        ("kale_model_fit_call", 2, "role", "train", "fits `model`"),  # model.fit(...)
        ("kale_model_fit_call", 3, "role", "evaluate", "assigns `metrics`"),  # metrics["a"] =
        ("kale_model_fit_call", 4, "untagged", None, "empty Kale step name"),
        ("kale_custom_names", 1, "role", "train", "fits `clf`"),
        ("kale_custom_names", 2, "role", "evaluate", "assigns `scores`"),
        ("kale_custom_names", 3, "untagged", None, "neither fits `clf`"),
        ("kale_parameters_twice", 1, "role", "parameters", "-p NAME VALUE"),
        ("kale_parameters_twice", 3, "unclear", None, "after cell 1 only"),
        ("kale_step_unparseable", 2, "unclear", None, "Python cannot parse it (line 3)"),
        ("kale_prev_without_step", 0, "unclear", None, "belongs with a step:<name> tag"),
        ("nbdev_module", 1, "untagged", None, "nbdev's module"),
        ("nbdev_module", 2, "untagged", None, "still runs in training"),
        ("nbdev_module", 3, "untagged", None, "its imports are lifted"),
        ("nbdev_module", 5, "role", "features", "defines `FARE_CAP`"),  # used by fare_band
        ("nbdev_module", 6, "role", "features", "defines `fare_band`"),
        ("nbdev_module", 7, "role", "features", "defines the entry point `features`"),
        ("nbdev_directive_forms", 0, "untagged", None, "does not define the entry point"),
        ("kale_and_nbdev", 3, "role", "skip", "out of the pipeline"),  # skip wins over #| hide
    ],
)
def test_each_tag_reads_as_the_issue_maps_it(
    fixture: str, cell: int, kind: str, role: str | None, says: str
) -> None:
    reading = _reading(fixture, cell)
    assert (reading.kind, reading.role) == (kind, role)
    assert says in reading.reason


def test_step_metadata_next_to_a_step_is_reported_not_mapped() -> None:
    readings = read_tags(read(FOREIGN / "kale_pipeline.ipynb"))[7]
    assert [(r.tag.written, r.kind) for r in readings] == [
        ("step:train", "role"),
        ("prev:features", "metadata"),
        ("limit:nvidia.com/gpu:1", "metadata"),
    ]


def test_findings_name_cell_tag_tool_and_command_and_error_where_it_changes_what_runs() -> None:
    path = FOREIGN / "kale_pipeline.ipynb"
    found = findings(read(path))
    assert [(f.cell_index, f.severity, f.name) for f in found] == [
        (1, "warning", "imports"),
        (2, "warning", "functions"),
        (3, "error", "pipeline-parameters"),
        (4, "warning", "block:load_data"),
        (5, "warning", "step:features"),
        (6, "error", "skip"),
        (7, "warning", "step:train"),
        (8, "warning", "step:evaluate"),
        (9, "warning", "pipeline-metrics"),
    ]
    skip = found[5]
    assert skip.code == "foreign-tags" and skip.cell_id == "index-6" and skip.line is None
    assert skip.role == "untagged"
    assert skip.message.startswith("kale_pipeline.ipynb: cell 6 (id index-6, untagged): ")
    assert "Kale's `skip` tag" in skip.message
    assert "would run during training" in skip.message
    assert f"`nb2prod tag {path} --from kale` tags it nb2prod:skip" in skip.message
    assert "(and `prev:features`, `limit:nvidia.com/gpu:1`)" in found[6].message


def test_nbdev_findings_carry_the_directive_line() -> None:
    found = findings(read(FOREIGN / "nbdev_module.ipynb"))
    assert [(f.cell_index, f.cell_id, f.line, f.name) for f in found] == [
        (5, "nbdev_module-5", 1, "#|export"),
        (6, "nbdev_module-6", 1, "#| export"),
        (7, "nbdev_module-7", 1, "#| export"),
    ]
    assert found[2].message.startswith(
        "nbdev_module.ipynb: cell 7 (id nbdev_module-7, untagged) line 1: has nbdev's "
        "`#| export` directive"
    )
    assert "--from nbdev` tags it nb2prod:features" in found[2].message


def test_once_a_notebook_has_roles_tags_left_untagged_on_purpose_are_silent() -> None:
    # nbdev_module has schema, train and evaluate roles: `#| hide`, `#| default_exp` and an
    # imports-only export stay untagged on import, so they say nothing
    found = findings(read(FOREIGN / "nbdev_module.ipynb"))
    assert {f.cell_index for f in found} == {5, 6, 7}
    # a Kale notebook tagged by hand: the imports and loading cells are silent, `skip` is not,
    # and the cell that carries nb2prod:train says nothing either
    hand = findings(read(FOREIGN / "kale_tagged_by_hand.ipynb"))
    assert [(f.cell_index, f.severity, f.name) for f in hand] == [(3, "error", "skip")]


def test_before_any_role_every_foreign_tag_is_reported() -> None:
    found = findings(read(FOREIGN / "nbdev_directive_forms.ipynb"))
    assert [f.cell_index for f in found] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert all(f.severity == "warning" for f in found)


def test_check_reports_foreign_tags_and_drops_no_parameters_for_a_kale_parameters_cell() -> None:
    result = check(FOREIGN / "kale_pipeline.ipynb")
    codes = [f.code for f in result.findings]
    assert codes.count("foreign-tags") == 9
    assert "no-parameters" not in codes
    assert not result.ok
    # without Kale's parameters cell, the info stays
    other = check(FOREIGN / "kale_fit_and_metrics.ipynb")
    assert "no-parameters" in [f.code for f in other.findings]
