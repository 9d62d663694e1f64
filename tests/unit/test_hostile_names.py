"""Hostile notebook file names and cell ids: the generated sources compile, and nothing runs.

Each name is a copy of the clean fixture, lifted after a fake training run (no kernel). The
payloads try every way out of where a name lands: a docstring (``\"\"\"``), a comment (a line
break), an encoding declaration (PEP 263: ``coding=utf_7`` turns ``+AAo-`` into a line
break when the file is imported), YAML (``: `` and ``"``), and Jinja (``{{``, ``{%``). A
payload that got out would ``touch`` the file named by ``$NB2PROD_HOSTILE``.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nb2prod.builder.codegen import comment, write
from nb2prod.builder.lift import MARKER_PATTERN, Lifted, class_name, lift
from nb2prod.notebook.check import check
from tests.support import CHECK, fake_training

RUN = '__import__("os").system("touch $NB2PROD_HOSTILE")'
NAMES = {
    "quotes": 'it\'s "my" churn.ipynb',
    "triple_quotes": 'a"""b.ipynb',
    "everything": f'x"""+{RUN}+"""\'\\ \n{RUN} # {{{{ 7*7 }}}} {{% if 1 %}} name: "v" #.ipynb',
    "encoding": "coding=utf_7 +AAo-__import__(+ACI-os+ACI-).system(+ACI-touch $NB2PROD_HOSTILE+ACI-)"
    "+AAo-#.ipynb",
}
NAMED = {"__init__.py", "schema.py", "features.py", "test_properties.py", "service.py"}
CELL_ID = f"x)\n{RUN}\n#"  # check refuses such an id; lift must keep it harmless all the same


@pytest.fixture
def mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file a payload that ran would create."""
    path = tmp_path / "payload-ran"
    monkeypatch.setenv("NB2PROD_HOSTILE", str(path))
    return path


def hostile_ids(checked, cell_id: str):
    """``checked`` with every lifted cell, and the cells its imports come from, given ``cell_id``.

    ``check`` reports such an id; this is what lift gets should one ever slip through.
    """

    def hostile(cell):
        return dataclasses.replace(cell, id=f"{cell_id}{cell.index}")

    plan = checked.plan
    plan = dataclasses.replace(
        plan,
        schema_cells=[hostile(c) for c in plan.schema_cells],
        feature_cells=[hostile(c) for c in plan.feature_cells],
        schema_imports=[dataclasses.replace(i, cell=hostile(i.cell)) for i in plan.schema_imports],
        feature_imports=[
            dataclasses.replace(i, cell=hostile(i.cell)) for i in plan.feature_imports
        ],
    )
    return dataclasses.replace(checked, plan=plan)


def lifted_as(name: str, tmp_path: Path) -> tuple[Lifted, Path]:
    """The clean fixture copied to ``name``, lifted with hostile cell ids, written to src/."""
    notebook = tmp_path / "nb" / name
    notebook.parent.mkdir(parents=True)
    shutil.copy(CHECK / "clean.ipynb", notebook)
    lifted = lift(hostile_ids(check(notebook), CELL_ID), fake_training(tmp_path / "train"))
    src = tmp_path / "src"
    write(lifted.files, src)
    return lifted, src


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_a_hostile_name_and_cell_id_stay_text_in_every_generated_file(
    name: str, tmp_path: Path, mark: Path
) -> None:
    import yaml

    lifted, src = lifted_as(name, tmp_path)
    for path in src.rglob("*.py"):
        # compiled from bytes, as an import reads them: an encoding declaration would count
        tree = ast.parse(path.read_bytes(), str(path))
        assert len(path.read_text().splitlines()[0]) < 400, path  # the header stays one line
        if path.name in NAMED:
            assert name in ast.get_docstring(tree), f"{path}: the name left the docstring"
    service = ast.parse((src / "service.py").read_bytes())
    classes = [n for n in service.body if isinstance(n, ast.ClassDef)]
    assert any(f"trained from {name};" in (ast.get_docstring(c) or "") for c in classes)
    # the cell markers read back, with the escaped name and id, as the gate's report reads them
    markers = [
        MARKER_PATTERN.match(line)
        for line in (src / "lifted" / "features.py").read_text().splitlines()
        if line.startswith("# %% ")
    ]
    assert [(m["nb"], m["id"]) for m in markers] == [(comment(name), comment(f"{CELL_ID}4"))]
    # bentofile.yaml parses, and says what the notebook is called
    bentofile = yaml.safe_load((src / "bentofile.yaml").read_text())
    assert bentofile["name"] == lifted.name
    assert bentofile["description"] == f"{lifted.name}: built from {name} by nb2prod 0.1.0"
    assert bentofile["service"] == f"service:{class_name(lifted.name)}"
    assert lifted.manifest["notebook"] == name
    assert not mark.exists()


def test_setting_names_stay_strings_in_the_training_runs_export_cell(
    tmp_path: Path, mark: Path
) -> None:
    from nb2prod.builder.codegen import render

    # Given variable names in the settings that would be code inside an f-string or a string
    name = "m{" + RUN + '}"\n'
    context = {"model": name, "metrics": name, "reference": name, "entrypoint": None}
    context |= {"out_dir": str(tmp_path), "parameters": [], "reference_rows": 5}
    source = render("export_cell.py.jinja", {**context, "input_columns": None, "notebook": "n"})
    # When the export cell runs on a "model" without predict() under that name
    namespace = {name: object()}
    with pytest.raises(TypeError) as raised:
        exec(compile(source, "export cell", "exec"), namespace)  # noqa: S102
    # Then the name shows in the message as it is, and nothing of it ran
    assert str(raised.value) == f"`{name}` is a object, which has no predict()"
    assert not mark.exists()


# Imports each src/ in turn, forgetting the previous one's modules first.
IMPORT_ALL = """
import importlib, json, sys
for src, modules in json.loads(sys.argv[1]):
    sys.path[:0] = [src, src + "/tests"]
    for name in modules:
        importlib.import_module(name)
    del sys.path[:2]
    for name in [*modules, "lifted"]:
        sys.modules.pop(name, None)
"""


def test_importing_the_generated_modules_runs_nothing_from_a_name(
    tmp_path: Path, mark: Path
) -> None:
    import json

    # Given the sources lifted for the worst names, with hostile cell ids
    plan = []
    for key in ("everything", "encoding"):
        _, src = lifted_as(NAMES[key], tmp_path / key)
        modules = [
            str(p.relative_to(src).with_suffix("")).replace(os.sep, ".").removeprefix("tests.")
            for p in sorted(src.rglob("*.py"))
            if p.name not in ("service.py", "conftest.py")  # service.py needs the model store
        ]
        plan.append((str(src), modules))
    assert {"lifted.features", "test_properties", "nb2prod_runtime"} <= set(plan[0][1])
    # When a fresh interpreter imports every one of them, as the gate and the bento do
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(plan)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Then they all import, and no payload ran
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not mark.exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("churn", "Churn"),
        ("my-churn.v2", "MyChurnV2"),
        ("2024_churn", "Service2024Churn"),
        ("none", "ServiceNone"),
    ],
)
def test_the_service_class_name_is_a_python_name(name: str, expected: str) -> None:
    assert class_name(name) == expected
    assert expected.isidentifier()
