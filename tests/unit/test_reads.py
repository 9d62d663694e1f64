"""What a training run read: the reads cells note it, and a later build sees any change.

The reads cells run in a plain Python subprocess here (as they run in the kernel, first and
last), so the audit hook they add never lives in the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from nb2prod.builder import reads
from nb2prod.builder.codegen import render
from nb2prod.builder.training import prepare
from nb2prod.notebook.check import check
from tests.support import CHECK


def run_between_reads_cells(tmp_path: Path, code: str, after: str = "") -> dict:
    """Run ``code`` between the two reads cells in a fresh interpreter, then ``after``; the
    record it left."""
    out = tmp_path / "train"
    out.mkdir(exist_ok=True)
    script = "\n".join(
        [
            render("reads_cell.py.jinja", reads.render_context(out, "start")),
            textwrap.dedent(code),
            render("reads_cell.py.jinja", reads.render_context(out, "done")),
            textwrap.dedent(after),
        ]
    )
    (tmp_path / "script.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((out / reads.READS_FILE).read_text())


def test_files_opened_for_reading_are_noted_and_python_itself_is_not(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    (tmp_path / "raw.bin").write_bytes(b"\0\1")
    record = run_between_reads_cells(
        tmp_path,
        """
        import os
        import pandas as pd
        DATA = "data/"
        frame = pd.read_csv(DATA + "train.csv")
        frame.to_csv("made_here.csv")          # written first: the run's own product
        pd.read_csv("made_here.csv")
        os.close(os.open("raw.bin", os.O_RDONLY))
        open(pd.__file__).close()              # a package's own file
        """,
    )
    assert record["files"] == [str(tmp_path / "data" / "train.csv"), str(tmp_path / "raw.bin")]
    assert record["elsewhere"] == []


def test_parquet_read_in_cpp_is_noted_a_folder_whole(tmp_path) -> None:
    import pandas as pd

    (tmp_path / "regions").mkdir()
    pd.DataFrame({"r": [1, 2]}).to_parquet(tmp_path / "regions" / "part-0.parquet")
    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "one.parquet")
    pd.DataFrame({"y": [1.0]}).to_feather(tmp_path / "one.feather")
    record = run_between_reads_cells(
        tmp_path,
        """
        import pyarrow.parquet as pq          # imported after the hook: wrapped on import
        import pyarrow.dataset as ds
        import pandas as pd
        pq.read_table("regions")
        ds.dataset("one.parquet").to_table()
        pd.read_feather("one.feather")
        """,
    )
    assert record["files"] == [
        str(tmp_path / "one.feather"),
        str(tmp_path / "one.parquet"),
        str(tmp_path / "regions"),
    ]


def test_readers_are_unwrapped_when_the_run_is_done(tmp_path) -> None:
    record = run_between_reads_cells(
        tmp_path,
        """
        import pyarrow.parquet as pq
        assert pq.read_table.__nb2prod_reads__
        """,
        after="""
        import sys
        assert not hasattr(pq.read_table, "__nb2prod_reads__")
        assert not any(type(f).__name__ == "Finder" for f in sys.meta_path)
        """,
    )
    assert record["files"] == []


def test_a_glob_is_a_listed_folder(tmp_path) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.csv").write_text("a\n1\n")
    record = run_between_reads_cells(
        tmp_path, "import glob\nfiles = [open(p).read() for p in glob.glob('parts/*.csv')]\n"
    )
    assert record["listed"] == [str(tmp_path / "parts")]
    assert record["files"] == [str(tmp_path / "parts" / "a.csv")]


def test_reads_nothing_can_hash_are_noted_as_elsewhere(tmp_path) -> None:
    record = run_between_reads_cells(
        tmp_path,
        """
        import socket, sqlite3
        import pandas as pd
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]     # nothing listens there: the attempt still counts
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            pass
        sqlite3.connect("shop.db").close()
        sqlite3.connect(":memory:").close()   # reads nothing
        try:
            pd.read_parquet(f"http://127.0.0.1:{port}/train.parquet")
        except OSError:
            pass
        """,
    )
    found = [tuple(e) for e in record["elsewhere"]]
    first = found[0]
    assert first[0] == "the network" and first[1].startswith("socket.connect to 127.0.0.1:")
    port = first[1].rsplit(":", 1)[1]
    assert ("a database", "sqlite3.connect to shop.db") in found
    url = f"http://127.0.0.1:{port}/train.parquet"
    assert ("the network", f"pandas.read_parquet of {url}") in found
    assert ("the network", f"urllib.Request to {url}") in found
    assert not any(":memory:" in detail for _, detail in found)
    assert reads.off_reason(record["elsewhere"]) == (
        f"its training run read from the network ({first[1]})"
    )


def write_record(train: Path, files: list[Path], listed: list[Path] = ()) -> None:
    train.mkdir(parents=True, exist_ok=True)
    record = {"files": [str(f) for f in files], "listed": [str(d) for d in listed], "elsewhere": []}
    (train / reads.READS_FILE).write_text(json.dumps(record))


def test_a_changed_or_missing_file_is_a_change(tmp_path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n")
    write_record(tmp_path / "train", [data])
    recorded = reads.inputs(tmp_path / "train").to_dict()
    assert reads.changed(recorded) is None
    data.write_text("a\n2\n")
    assert reads.changed(recorded) == f"data changed: {data}"
    data.unlink()
    assert reads.changed(recorded) == f"data changed: {data} (gone)"


def test_a_probed_file_that_is_still_absent_is_no_change(tmp_path) -> None:
    probed = tmp_path / "optional.cfg"
    write_record(tmp_path / "train", [probed])
    recorded = reads.inputs(tmp_path / "train").to_dict()
    assert reads.changed(recorded) is None
    probed.write_text("now here")
    assert reads.changed(recorded) == f"data changed: {probed}"


def test_a_folder_read_whole_changes_with_any_file_under_it(tmp_path) -> None:
    dataset = tmp_path / "regions"
    (dataset / "year=2025").mkdir(parents=True)
    (dataset / "year=2025" / "part-0.parquet").write_bytes(b"one")
    write_record(tmp_path / "train", [dataset])
    recorded = reads.inputs(tmp_path / "train").to_dict()
    assert list(recorded["files"]) == [str(dataset / "year=2025" / "part-0.parquet")]
    assert reads.changed(recorded) is None
    (dataset / "year=2026").mkdir()
    (dataset / "year=2026" / "part-0.parquet").write_bytes(b"two")
    assert reads.changed(recorded) == f"data changed: {dataset} (its files are not the same)"


def test_a_listed_folder_changes_with_a_new_name(tmp_path) -> None:
    (tmp_path / "parts").mkdir()
    write_record(tmp_path / "train", [], [tmp_path / "parts"])
    recorded = reads.inputs(tmp_path / "train").to_dict()
    assert reads.changed(recorded) is None
    (tmp_path / "parts" / "b.csv").write_text("")
    assert (
        reads.changed(recorded)
        == f"data changed: {tmp_path / 'parts'} (its files are not the same)"
    )


def test_a_run_without_a_record_or_read_from_elsewhere_turns_the_cache_off(tmp_path) -> None:
    assert reads.inputs(tmp_path).off == "its training run left no record of the files it read"
    (tmp_path / reads.READS_FILE).write_text(
        json.dumps(
            {"files": [], "listed": [], "elsewhere": [["a database", "sqlite3.connect to x"]]}
        )
    )
    recorded = reads.inputs(tmp_path).to_dict()
    assert recorded["off"] == "its training run read from a database (sqlite3.connect to x)"
    assert reads.changed(recorded) == (
        "cache off for this notebook: its training run read from a database (sqlite3.connect to x)"
    )


@pytest.mark.parametrize("minor", [0, 2, 4])
def test_an_old_notebook_is_prepared_as_valid_nbformat_4_5(tmp_path, minor) -> None:
    # Given the clean fixture saved as nbformat 4.<minor>, without cell ids
    node = json.loads((CHECK / "clean.ipynb").read_text())
    node["nbformat_minor"] = minor
    for cell in node["cells"]:
        cell.pop("id", None)
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(node))
    checked = check(path, strict=True)
    # When the training run's notebook is prepared
    prepared = prepare(checked.notebook, tmp_path / "train", checked)
    # Then it is 4.5, valid, and its cells carry the ids nb2prod names them by
    assert (prepared.nbformat, prepared.nbformat_minor) == (4, 5)
    nbformat.validate(prepared)
    by_index = {c.index: c.id for c in checked.notebook.cells}
    for cell in prepared.cells:
        if "nb2prod_cell" in cell.metadata:
            assert (
                cell.id
                == by_index[cell.metadata["nb2prod_cell"]]
                == f"index-{cell.metadata['nb2prod_cell']}"
            )
    tags = [c.metadata.get("tags", []) for c in prepared.cells]
    assert reads.READS_TAG in tags[0] and reads.READS_TAG in tags[-1]
