"""The acceptance path of issue 11: a Kale-tagged imperative notebook goes through
``nb2prod tag --from kale``, ``nb2prod suggest --apply`` and ``nb2prod build`` with no edit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import FIXTURES

BYO = FIXTURES / "byo"


@pytest.fixture(scope="module")
def lifted(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path):
    """One suggest run and one build, shared by the tests below."""
    from typer.testing import CliRunner

    from nb2prod.builder.pipeline import build
    from nb2prod.cli import app

    work = tmp_path_factory.mktemp("byo")
    shutil.copy(BYO / "titanic_kale.ipynb", work)
    shutil.copytree(BYO / "data", work / "data")
    runner = CliRunner()
    tagged = runner.invoke(
        app,
        ["tag", str(work / "titanic_kale.ipynb"), "--from", "kale", "--out", str(work / "X.ipynb")],
    )
    assert tagged.exit_code == 0, tagged.output
    suggested = runner.invoke(
        app, ["suggest", str(work / "X.ipynb"), "--json", "--apply", "--out", str(work / "Y.ipynb")]
    )
    assert suggested.exit_code == 0, suggested.output
    report = json.loads(suggested.stdout[suggested.stdout.index("{") :])
    result = build(work / "Y.ipynb", out_dir=work / "bentos")
    return work, report, result


def test_the_parity_report_names_every_changed_column_and_why(lifted) -> None:
    _, report, _ = lifted
    parity = report["parity"]
    changed = {c["column"]: c for c in parity["columns"] if c["differ"]}
    assert set(changed) == {"Age", "FamilySize", "IsAlone"}
    assert changed["Age"]["reason"].startswith("deliberate: random imputation of Age")
    assert 0 < changed["Age"]["differ"] < parity["rows"]
    for column in ("FamilySize", "IsAlone"):
        assert changed[column]["only_in"] == "suggestion"
        assert changed[column]["reason"].startswith(
            "original notebook bug: the original notebook's loop in cell 8 line 1 changed the "
            "old train_df: cell 7 line 1 rebound train_df"
        )
    assert parity["ok"] and parity["rows"] == 420
    kinds = {(n["kind"], n["cell_index"]) for n in report["notes"]}
    assert ("deliberate", 9) in kinds and ("bug", 8) in kinds
    assert report["settings"]["learned"] == ["EMBARKED_MODE", "AGE_FILL", "FARE_MEDIAN"]


def test_the_applied_notebook_keeps_its_format_and_its_originals(lifted) -> None:
    work, report, _ = lifted
    before = json.loads((work / "X.ipynb").read_text())
    after = json.loads((work / "Y.ipynb").read_text())
    assert (after["nbformat"], after["nbformat_minor"]) == (4, 4)
    assert not any("id" in c for c in after["cells"])
    originals = [c for c in after["cells"] if c["metadata"].get("nb2prod_original")]
    assert [c["source"] for c in originals] == [
        before["cells"][i]["source"] for i in report["skipped"]
    ]
    assert all("nb2prod:skip" in c["metadata"]["tags"] for c in originals)
    roles = [
        t for c in after["cells"] for t in c["metadata"].get("tags", []) if t.startswith("nb2prod:")
    ]
    assert {"nb2prod:schema", "nb2prod:features", "nb2prod:train", "nb2prod:evaluate"} <= set(roles)


def test_the_suggested_notebook_builds_with_the_property_gate(lifted) -> None:
    import ast

    import pandas as pd

    work, _, result = lifted
    src = result.build_dir / "src"
    manifest = json.loads((src / "nb2prod.json").read_text())
    # The learned constants hold the training frame's statistics, as the training run saw them
    train = pd.read_csv(work / "data" / "train.csv")
    learned = {k: ast.literal_eval(v) for k, v in manifest["learned"].items()}
    assert learned == {
        "EMBARKED_MODE": train["Embarked"].dropna().mode()[0],
        "FARE_MEDIAN": pytest.approx(train["Fare"].median()),
        # the centre of randint(mean - std, mean + std): the random draw made deterministic
        "AGE_FILL": pytest.approx(train["Age"].mean()),
    }
    features = (src / "lifted" / "features.py").read_text()
    assert "# Learned in training: statistics of the training data" in features
    assert "np.random" not in features
    assert f"EMBARKED_MODE = {learned['EMBARKED_MODE']!r}".replace("'", '"') in features
    assert manifest["properties"]["gate"] is True and not manifest["properties"]["skipped"]
    assert "test_row_independence" in manifest["properties"]["tests"]


def test_the_applied_notebook_checks_with_no_warnings(lifted) -> None:
    from nb2prod.notebook.check import check

    work, _, _ = lifted
    findings = check(work / "Y.ipynb").findings
    assert [f.code for f in findings if f.severity in ("warning", "error")] == []


def test_parity_of_a_hand_edited_entry_point_names_exactly_the_edited_column(lifted) -> None:
    """One papermill run: the marked originals against the notebook's own, edited features."""
    from typer.testing import CliRunner

    from nb2prod.cli import app

    work, _, _ = lifted
    node = json.loads((work / "Y.ipynb").read_text())
    (cell,) = [c for c in node["cells"] if "nb2prod:features" in c["metadata"].get("tags", [])]
    source = "".join(cell["source"])
    rule = "map({'female': 1, 'male': 0})"
    assert rule in source
    cell["source"] = source.replace(rule, "map({'female': 0, 'male': 1})")
    (work / "Z.ipynb").write_text(json.dumps(node))
    result = CliRunner().invoke(app, ["suggest", str(work / "Z.ipynb"), "--json"])
    assert result.exit_code == 1, result.output  # automatic: it has an entry point
    report = json.loads(result.stdout[result.stdout.index("{") :])
    parity = report["parity"]
    by = {c["column"]: c for c in parity["columns"]}
    assert [c for c, v in by.items() if v["reason"].startswith("unexplained")] == ["Sex"]
    assert by["Sex"]["differ"] == parity["rows"] == 420
    assert by["Sex"]["examples"][0]["original"] + by["Sex"]["examples"][0]["suggested"] == 1
    assert by["Age"]["reason"].startswith("deliberate: random imputation of Age")
    assert by["FamilySize"]["reason"].startswith("original notebook bug")
    assert not parity["ok"] and report["original_cells"] == [
        i for i, c in enumerate(node["cells"]) if c["metadata"].get("nb2prod_original")
    ]


def test_the_suggested_bento_serves_and_monitor_leaves_ids_and_free_text_out(lifted) -> None:
    """The bento of a notebook nobody wrote for nb2prod, in production: served over real HTTP
    (a wrong type is a 422 naming row and column), and ``nb2prod monitor`` on a fresh sample
    of the training distribution, with an ID and a free-text column present, exits 0."""
    import subprocess

    import httpx
    import numpy as np

    from tests.fixtures.byo.make_fixtures import passengers
    from tests.support import BIN, records, serve

    work, _, result = lifted
    fresh = passengers(np.random.default_rng(2026), 400, start=5001, labels=False)
    rows = records(fresh.head(8))
    with serve(result.tag) as base:
        # Given the served bento, when fresh rows arrive (nulls in Age and Embarked included)
        answer = httpx.post(f"{base}/predict", json={"rows": rows}, timeout=60)
        # Then every row gets a prediction
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 8
        # And a number where a name belongs is a 422 naming the row and the column
        bad = [rows[0], {**rows[1], "Name": 7}]
        refused = httpx.post(f"{base}/predict", json={"rows": bad}, timeout=60)
        assert refused.status_code == 422, refused.text
        assert [(f["row"], f["column"]) for f in refused.json()["failures"]] == [(1, "Name")]

    def monitor(current: Path) -> subprocess.CompletedProcess:
        command = [str(BIN / "nb2prod"), "monitor", result.tag, "--current", str(current)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    # When the real command monitors a fresh sample of the training distribution
    fresh.to_csv(work / "fresh.csv", index=False)
    done = monitor(work / "fresh.csv")
    # Then it exits 0 and says which columns it left out of drift, and why
    said = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left out of drift: PassengerId (detected as ID-like" in said
    assert "Name (detected as free text" in said
    assert done.stderr == ""
    # And a sample of older men in third class (every value inside the schema) is drift, exit 1
    shifted = fresh.assign(Age=fresh["Age"].clip(lower=45), Pclass=3, Sex="male")
    shifted.to_csv(work / "shifted.csv", index=False)
    assert monitor(work / "shifted.csv").returncode == 1
