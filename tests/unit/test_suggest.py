"""nb2prod suggest without a kernel: the plan, the lifted statements, the cells, apply."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from nb2prod.errors import SuggestError
from nb2prod.notebook.read import parse_content, read
from nb2prod.suggest import apply
from nb2prod.suggest import rewrite as rw
from nb2prod.suggest.plan import make_plan
from nb2prod.suggest.statements import Lifter, feature_statements
from tests.support import FIXTURES

BYO = FIXTURES / "byo"


def lifted(nb):
    plan = make_plan(nb)
    out = Lifter(plan).run(feature_statements(plan))
    xcell = rw.x_cell(plan, out.notes)
    body = rw.features_body(out, xcell.tail)
    return plan, out, xcell, body


def notebook(*sources: str, path: str = "t.ipynb"):
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for s in sources
    ]
    node = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    return parse_content(node, Path(path)), node


def test_the_kale_notebook_plan_finds_load_fit_x_and_target() -> None:
    plan, _out, xcell, _body = lifted(read(BYO / "titanic_kale.ipynb"))
    assert (plan.train, plan.tests, plan.target) == ("train_df", ["test_df"], "Survived")
    assert (plan.load.cell.index, plan.x_cell.index, plan.fit.cell.index) == (3, 10, 10)
    assert plan.model == "random_forest" and plan.x_fit == "X_train"
    assert [c.index for c in plan.feature_cells] == [5, 6, 7, 8, 9]  # the Kale skip cell is out
    assert xcell.frames == [
        "X_train = features(X_raw)",
        "Y_train = train_df['Survived']",
        "X_test = features(test_df[X_raw.columns])",
    ]


def test_statistics_become_learned_and_random_imputation_a_constant() -> None:
    _plan, out, _xcell, body = lifted(read(BYO / "titanic_kale.ipynb"))
    text = "\n".join(ast.unparse(n) for n in body)
    assert rw.used_learned(out, body) == ["EMBARKED_MODE", "AGE_FILL", "FARE_MEDIAN"]
    assert "np.random" not in text and ".mean()" not in text and ".median()" not in text
    assert "df.loc[df['Age'].isna(), 'Age'] = age_null_random_list" in text
    assert "age_avg" not in text  # dead once the draw became a constant
    assert out.random_columns == {"Age": "cell 9 line 5"}
    kinds = {(n.kind, n.cell_index, n.line) for n in out.notes}
    assert ("deliberate", 9, 5) in kinds and ("bug", 8, 1) in kinds
    assert ("dropped", 9, 10) in kinds  # test_df["Fare"].fillna(..., inplace=True)
    assert set(out.stale_columns) == {"FamilySize", "IsAlone"}
    assert body[-1:] and ast.unparse(body[-1]) == "df = df.drop(columns=['PassengerId', 'Name'])"


def test_the_learned_cell_replays_the_prefix_before_each_statistic() -> None:
    _plan, out, _xcell, body = lifted(read(BYO / "titanic_kale.ipynb"))
    cell = rw.learned_cell(out, set(rw.used_learned(out, body)))
    lines = cell.splitlines()
    mode = next(i for i, line in enumerate(lines) if line.startswith("EMBARKED_MODE ="))
    title = next(i for i, line in enumerate(lines) if "df['Title'] = df['Title'].fillna(0)" in line)
    assert title < mode  # computed after the steps that ran before it in the original
    assert lines[-1] == "del df" and "df = X_raw.copy()" in lines
    compile(cell, "learned", "exec")


def test_inplace_calls_become_assignments_and_loops_inline_once() -> None:
    plan, out, xcell, body = lifted(read(BYO / "loans.ipynb"))
    text = "\n".join(ast.unparse(n) for n in body)
    assert "inplace" not in text and "for " not in text
    assert "df['employment_years'] = df['employment_years'].fillna(EMPLOYMENT_YEARS_MEDIAN)" in text
    assert "df = df.drop(['loan_id'], axis=1)" in text
    assert rw.used_learned(out, body) == ["INCOME_MEDIAN", "EMPLOYMENT_YEARS_MEDIAN"]
    assert (plan.x_source, plan.x_fit, plan.model) == ("X", "X_tr", "clf")
    assert xcell.ordered[0] == "X = features(X_raw)" and "train_test_split" in xcell.ordered[2]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('train["n"] = train.groupby("a")["b"].transform("mean")', "group"),
        ("train = train.dropna()", "dropna"),
        ('train["prev"] = train["b"].shift(1)', "shift"),
        ('train["leak"] = train["y"] * 2', "target column"),
    ],
)
def test_a_statement_that_needs_other_rows_is_refused_with_cell_and_line(line, why) -> None:
    nb, _ = notebook(
        "import pandas as pd\ntrain = pd.read_csv('t.csv')",
        f"x = 1\n{line}",
        "X = train.drop(columns=['y'])\ny = train['y']\nm.fit(X, y)",
    )
    with pytest.raises(SuggestError) as err:
        lifted(nb)
    assert "cell 1" in str(err.value) and "line 2" in str(err.value) and why in str(err.value)
    assert err.value.fields["cell_index"] == 1 and err.value.fields["line"] == 2


def test_no_fit_on_variables_is_one_sentence() -> None:
    nb, _ = notebook("import pandas as pd\ntrain = pd.read_csv('t.csv')")
    with pytest.raises(SuggestError, match=r"t.ipynb: no cell calls `<model>.fit\(X, y\)`"):
        make_plan(nb)


def test_render_turns_inferred_columns_into_a_model() -> None:
    from nb2prod.suggest.infer import render

    inputs = [
        {"name": "Age", "kind": "float", "nullable": True, "ge": 0.5, "le": 80.0},
        {"name": "Sex", "kind": "str", "nullable": False, "isin": ["female", "male"]},
        {"name": "class", "kind": "int", "nullable": False, "ge": 1, "le": 3},
    ]
    outputs = [{"name": "Title", "kind": "int", "nullable": False}]
    text = render(inputs, outputs)
    assert "Age: Series[float] = pa.Field(ge=0.5, le=80.0, nullable=True)" in text
    assert "Sex: Series[str] = pa.Field(isin=['female', 'male'])" in text
    assert "c_class: Series[int] = pa.Field(alias='class', ge=1, le=3)" in text
    assert "Title: Series[float] = pa.Field(coerce=True)" in text
    namespace: dict = {}
    exec(compile(text, "schema", "exec", dont_inherit=True), namespace)  # noqa: S102
    import pandas as pd

    frame = pd.DataFrame({"Age": [None, 3.0], "Sex": ["male", "female"], "class": [1, 3]})
    namespace["RawInput"].validate(frame)


def test_describe_uses_pandera_inference() -> None:
    import pandas as pd

    from nb2prod.suggest.infer import describe

    frame = pd.read_csv(BYO / "data" / "train.csv")
    columns = {c["name"]: c for c in describe(frame)}
    assert columns["Age"]["nullable"] and columns["Age"]["kind"] == "float"
    assert columns["Embarked"]["isin"] == ["C", "Q", "S"] and columns["Embarked"]["nullable"]
    assert "isin" not in columns["Name"]  # near-unique text
    assert columns["Pclass"] == {
        "name": "Pclass",
        "kind": "int",
        "nullable": False,
        "ge": 0,  # observed 1 to 3, widened by its width and down to 0
        "le": 5,
    }


def test_parity_names_the_reason_of_each_differing_column() -> None:
    import numpy as np
    import pandas as pd

    from nb2prod.suggest.parity import compare

    raw = pd.DataFrame({"Age": [1.0, np.nan, 3.0, np.nan], "b": [1, 2, 3, 4]}, index=[5, 6, 7, 8])
    original = pd.DataFrame({"Age": [1.0, 17.0, 3.0, 40.0], "b": [1, 2, 3, 4]}, index=[5, 6, 7, 8])
    suggested = original.assign(Age=[1.0, 20.0, 3.0, 20.0], b=[1, 2, 9, 4], new=1)
    info = {"random_columns": {"Age": "cell 9 line 5"}, "stale_columns": {"new": "the bug"}}
    result = compare(original.iloc[:3], suggested, raw, info)
    by = {c["column"]: c for c in result["columns"]}
    assert by["Age"]["differ"] == 1 and by["Age"]["reason"].startswith("deliberate")
    assert by["Age"]["examples"] == [{"index": 6, "original": 17.0, "suggested": 20.0}]
    assert by["b"]["reason"] == "unexplained: check this column"
    assert by["new"]["only_in"] == "suggestion" and by["new"]["reason"].startswith(
        "original notebook bug"
    )
    assert result["rows"] == 3 and not result["ok"]


def test_apply_keeps_the_originals_as_marked_skip_cells_and_the_format() -> None:
    node = json.loads((BYO / "titanic_kale.ipynb").read_text())
    suggestion = {
        "cells": [
            {"role": None, "source": "X_raw = 1", "insert_after_index": 3},
            {"role": "features", "source": "def features(df): ...", "insert_after_index": 3},
        ],
        "skipped": [5],
        "tags": [{"cell_index": 11, "role": "evaluate"}],
        "settings": {"reference": "X_raw", "learned": ["A"]},
    }
    out = apply(node, suggestion)
    assert out["nbformat_minor"] == 4 and not any("id" in c for c in out["cells"])
    assert [c["source"] for c in out["cells"][4:6]] == ["X_raw = 1", "def features(df): ..."]
    assert out["cells"][5]["metadata"]["tags"] == ["nb2prod:features"]
    original = out["cells"][7]
    assert original["source"] == node["cells"][5]["source"]
    assert original["metadata"]["nb2prod_original"] is True
    assert (
        "nb2prod:skip" in original["metadata"]["tags"]
        and "block:features" in original["metadata"]["tags"]
    )
    assert "nb2prod:evaluate" in out["cells"][13]["metadata"]["tags"]
    assert out["metadata"]["nb2prod"] == {"reference": "X_raw", "learned": ["A"]}
    assert node["cells"][5]["metadata"] == {"tags": ["block:features", "prev:load"]}  # pure


def test_apply_without_a_target_is_refused_before_any_run() -> None:
    from typer.testing import CliRunner

    from nb2prod.cli import app

    result = CliRunner().invoke(app, ["suggest", str(BYO / "loans.ipynb"), "--apply"])
    assert result.exit_code == 2 and "--apply needs --out PATH or --in-place" in result.output


def test_percent_script_diff_shows_the_new_roles() -> None:
    from nb2prod.suggest.accept import diff

    node = json.loads((BYO / "loans.ipynb").read_text())
    after = apply(node, {"skipped": [3], "tags": [{"cell_index": 5, "role": "train"}]})
    text = diff(node, after, "loans.ipynb")
    assert '+# %% tags=["nb2prod:skip"]' in text and '+# %% tags=["nb2prod:train"]' in text


SCHEMA = (
    "import pandera.pandas as pa\nfrom pandera.typing import DataFrame, Series\n\n\n"
    "class Raw(pa.DataFrameModel):\n    a: Series[float]\n\n\n"
    "class Out(pa.DataFrameModel):\n    a: Series[float]"
)


def written(*cells: tuple[str, list[str], dict]) -> dict:
    """Notebook JSON (4.4) from (source, tags, extra metadata) triples."""
    return {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": tags, **meta},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for source, tags, meta in cells
        ],
        "metadata": {"nb2prod": {"reference": "X_raw"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }


HAND_WRITTEN = written(
    ("import pandas as pd\ntrain = pd.read_csv('t.csv')", [], {}),  # 0
    ("X_raw = train.drop(columns=['y']).copy()", [], {}),  # 1
    (SCHEMA, ["nb2prod:schema"], {}),  # 2
    (
        "def features(df: DataFrame[Raw]) -> DataFrame[Out]:\n    return df.fillna(0)",
        ["nb2prod:features"],
        {},
    ),  # 3
    ("train['a'] = train['a'].fillna(train['a'].mean())", ["nb2prod:skip"], {}),  # 4
    ("X = train.drop(columns=['y'])\ny = train['y']", ["nb2prod:skip"], {}),  # 5
    ("X = features(X_raw)\ny = train['y']", [], {}),  # 6
    ("X_tr, X_val, y_tr, y_val = train_test_split(X, y)", [], {}),  # 7
    ("model = M().fit(X_tr, y_tr)", ["nb2prod:train"], {}),  # 8
)


def test_the_original_view_runs_the_originals_in_place_of_the_new_path() -> None:
    from nb2prod.suggest.existing import has_entrypoint, original_cells, original_view, own_path

    nb = parse_content(HAND_WRITTEN, Path("hand.ipynb"))
    assert has_entrypoint(nb)
    with pytest.raises(SuggestError, match=r"hand.ipynb: no cell is marked .*--original 4,5,6"):
        original_cells(nb, None)
    with pytest.raises(SuggestError, match=r"--original names cell 3 .*contract cell"):
        original_cells(nb, [3, 4])
    originals = original_cells(nb, [5, 4])
    view, new_only = original_view(nb, originals)
    assert originals == [4, 5] and new_only == {2, 3, 6}
    assert [c.role for c in view.cells] == [
        None,
        None,
        "skip",
        "skip",
        None,
        None,
        "skip",
        None,
        "train",
    ]
    plan = make_plan(view)  # the originals' X: 7's split reads 5's X, not features(X_raw)
    assert (plan.x_cell.index, plan.fit.cell.index, plan.load.cell.index) == (5, 8, 0)
    assert [c.index for c in plan.feature_cells] == [1, 4]
    path = own_path(nb, plan, originals, new_only)
    assert "__nb2prod_frames" in path[0]["source"]  # the raw frames come back first
    assert [c["metadata"]["nb2prod_cell"] for c in path[1:]] == [1, 2, 3, 6, 7]
    assert nb.node["cells"][4]["metadata"]["tags"] == ["nb2prod:skip"]  # the input is unchanged


def test_marked_originals_are_found_and_suggest_refuses_an_entry_point() -> None:
    from nb2prod.suggest import suggest
    from nb2prod.suggest.existing import original_cells

    node = json.loads(json.dumps(HAND_WRITTEN))
    for index in (4, 5):
        node["cells"][index]["metadata"]["nb2prod_original"] = True
    path = Path("hand.ipynb")
    assert original_cells(parse_content(node, path), None) == [4, 5]
    with pytest.raises(SuggestError, match=r"already defines the entry point `features`.*--parity"):
        suggest(path, node)


def _warnings(node: dict) -> list[str]:
    from nb2prod.notebook.check import check

    result = check(Path("hand.ipynb"), node)
    return [f.code for f in result.findings if f.severity in ("warning", "error")]


def test_a_call_of_the_entry_point_that_feeds_the_train_cell_is_training_through_it() -> None:
    node = json.loads(json.dumps(HAND_WRITTEN))
    node["cells"][0]["source"] += "\nfrom sklearn.model_selection import train_test_split"
    node["cells"][0]["source"] += "\nfrom sklearn.linear_model import LinearRegression as M"
    assert "entrypoint-not-called" not in _warnings(node)  # 6 -> 7 -> the train cell's X_tr
    unused = json.loads(json.dumps(node))
    unused["cells"][6]["source"] = (
        "Z = features(X_raw)\nX = train.drop(columns=['y'])\ny = train['y']"
    )
    assert "entrypoint-not-called" in _warnings(unused)
    skipped = json.loads(json.dumps(node))
    skipped["cells"][6]["metadata"]["tags"] = ["nb2prod:skip"]
    skipped["cells"][5]["metadata"]["tags"] = []
    assert "entrypoint-not-called" in _warnings(skipped)


def test_inferred_ranges_are_widened_and_ids_and_free_text_are_unbounded() -> None:
    """A schema inferred from 420 passengers must take the 421st: a new id, a new name, an
    older passenger; and still bound what the property gate draws."""
    import numpy as np
    import pandas as pd

    from nb2prod.suggest.infer import describe, render
    from tests.fixtures.byo.make_fixtures import passengers

    frame = passengers(np.random.default_rng(7), 420, start=1, labels=False)
    columns = {c["name"]: c for c in describe(frame)}
    assert {"ge", "le", "isin"}.isdisjoint(columns["PassengerId"])
    assert columns["PassengerId"]["unbounded"].startswith("id-like")
    assert columns["Name"]["unbounded"].startswith("free-text")
    observed = frame["Age"].max()
    assert columns["Age"]["ge"] == 0 and observed * 1.5 < columns["Age"]["le"] < observed * 2.5
    assert columns["Sex"]["isin"] == ["female", "male"]
    namespace: dict = {}
    exec(compile(render(list(columns.values()), []), "s", "exec", dont_inherit=True), namespace)  # noqa: S102
    newcomer = passengers(np.random.default_rng(8), 50, start=9001, labels=False)
    newcomer.loc[0, "Age"] = float(observed) + 5
    namespace["RawInput"].validate(newcomer)  # raises if a fresh passenger is refused
    with pytest.raises(Exception, match="less_than_or_equal_to"):
        namespace["RawInput"].validate(newcomer.assign(Age=pd.Series([1e308] * 50)))
