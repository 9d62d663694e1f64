"""The ``/nb2prod/`` server routes, through a real Jupyter server (pytest-jupyter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nb2prod
import nb2prod.suggest
from nb2prod.builder.pipeline import build
from nb2prod.cli import app
from nb2prod.errors import Nb2ProdError, NotebookError, ParameterError
from nb2prod.notebook.check import check_params
from nb2prod.notebook.read import parse_content
from nb2prod.notebook.tagging import import_tags
from tests.lab_support import BAD, UI, answer, jobs, jp_server_config, post, root, wait_for
from tests.support import CHECK

MALFORMED = CHECK / "malformed"
KALE = "kale_passengers.ipynb"  # Kale-tagged, nbformat 4.4, imperative features

pytest_plugins = ["pytest_jupyter.jupyter_server"]
__all__ = ["jp_server_config", "root"]  # fixtures, used by name


@pytest.mark.parametrize("rel", ["diabetes.ipynb", f"sub/{BAD}"])
async def test_check_answers_what_check_json_prints(jp_fetch, root: Path, rel: str) -> None:
    # Given a notebook in the server root
    # When the panel asks for its findings
    response = await post(jp_fetch, "check", {"path": rel})
    # Then the answer is the `nb2prod check --json` report, named root-relative
    assert response.code == 200
    expected = nb2prod.check(root / rel).to_dict()
    expected["notebook"] = rel
    assert answer(response) == expected


@pytest.mark.parametrize("fixture", sorted(p.stem for p in CHECK.glob("*.ipynb")))
async def test_the_panel_and_the_cli_give_identical_findings(
    jp_fetch, jp_root_dir: Path, fixture: str
) -> None:
    # Given a check fixture in the server root, as the editor holds it
    path = jp_root_dir / f"{fixture}.ipynb"
    path.write_text((CHECK / path.name).read_text())
    content = json.loads(path.read_text())
    # When the panel checks the editor's content, and the CLI checks the file
    route = answer(await post(jp_fetch, "check", {"path": path.name, "content": content}))
    cli = CliRunner().invoke(app, ["check", "--json", str(path)])
    # Then both find the same things, in the same words
    printed = json.loads(cli.stdout)
    assert cli.exit_code == (0 if printed["ok"] else 1)
    for key in ("ok", "counts", "findings", "pipeline", "settings"):
        assert route[key] == printed[key], key


async def test_check_of_unsaved_content_follows_the_edit(jp_fetch, root: Path) -> None:
    # Given the editor's copy of a notebook, where the untagged cell 1 is now nb2prod:features
    content = json.loads((root / "sub" / BAD).read_text())
    content["cells"][1]["metadata"]["tags"] = ["nb2prod:features"]
    # When it is checked with that content
    report = answer(await post(jp_fetch, "check", {"path": f"sub/{BAD}", "content": content}))
    # Then the undefined-name error is gone, though the file on disk still has it
    assert "undefined-name" not in {f["code"] for f in report["findings"]}
    assert [p["cell_index"] for p in report["pipeline"] if p["role"] == "features"] == [1, 3]
    on_disk = answer(await post(jp_fetch, "check", {"path": f"sub/{BAD}"}))
    assert "undefined-name" in {f["code"] for f in on_disk["findings"]}


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "check", {"path": "diabetes.ipynb"}),
        ("POST", "build", {"path": "diabetes.ipynb"}),
        ("GET", "jobs", None),
        ("GET", "jobs/0123abcd", None),
        ("POST", "tag", {"path": "diabetes.ipynb", "source": "auto"}),
        ("POST", "suggest", {"path": "diabetes.ipynb"}),
        ("POST", "suggest/apply", {"content": {}, "suggestion": {}}),
    ],
)
async def test_every_route_refuses_requests_without_the_token(
    http_server_client, jp_base_url: str, root: Path, method: str, route: str, body
) -> None:
    # Given no token, no cookie and no XSRF header
    # When any nb2prod route is called
    response = await http_server_client.fetch(
        f"{jp_base_url}nb2prod/{route}",
        method=method,
        body=json.dumps(body) if body is not None else None,
        raise_error=False,
    )
    # Then it is refused, and no build was started
    assert response.code == 403
    assert not (root / "bentos").exists()


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../etc/passwd", 403),
        ("/etc/passwd", 400),  # a leading slash means the root, as in the contents API
        ("../outside.ipynb", 403),
        ("sub/../../outside.ipynb", 403),
        ("link.ipynb", 403),
        (".hidden/nb.ipynb", 403),
        ("diabetes.py", 400),
        ("missing.ipynb", 404),
        ("", 400),
        ("nb\x00.ipynb", 400),
    ],
)
@pytest.mark.parametrize("route", ["check", "build", "tag", "suggest"])
async def test_paths_outside_the_root_get_4xx_and_read_nothing(
    jp_fetch, root: Path, tmp_path: Path, path: str, code: int, route: str
) -> None:
    # Given a notebook outside the root, and a symlink inside the root pointing at it
    outside = root.parent / "outside.ipynb"
    outside.write_text((UI / BAD).read_text())
    (root / "link.ipynb").symlink_to(outside)
    (root / "diabetes.py").write_text("")
    before = outside.stat().st_atime_ns
    # When a route is asked about it
    response = await post(jp_fetch, route, {"path": path})
    # Then it answers a 4xx with a message, and the file was not opened
    assert response.code == code
    assert answer(response)["message"]
    assert outside.stat().st_atime_ns == before
    assert "findings" not in answer(response)
    assert "content" not in answer(response)
    assert await jobs(jp_fetch) == []


async def test_malformed_requests_get_400(jp_fetch, root: Path) -> None:
    bad_json = await jp_fetch(
        "nb2prod", "check", method="POST", body="{not json", raise_error=False
    )
    assert bad_json.code == 400
    bad_params = await post(jp_fetch, "build", {"path": "diabetes.ipynb", "params": [1]})
    assert bad_params.code == 400
    unknown = await jp_fetch("nb2prod", "jobs", "0123abcd", raise_error=False)
    assert unknown.code == 404
    assert answer(unknown)["message"] == "No build job 0123abcd."


async def test_a_failed_build_reports_the_cli_message(jp_fetch, root: Path) -> None:
    # Given a notebook whose check fails
    with pytest.raises(Nb2ProdError) as cli:
        build(root / "sub" / BAD, out_dir=root.parent / "cli-bentos")
    # When it is built through the server
    started = await post(jp_fetch, "build", {"path": f"sub/{BAD}"})
    assert started.code == 202
    job = await wait_for(jp_fetch, answer(started)["id"], timeout=60)
    # Then the job failed at check, with the very message the CLI prints
    assert job["state"] == "failed"
    assert job["error"]["message"] == str(cli.value)
    assert job["error"]["error"] == "CheckFailed"
    assert job["stages"]["check"] == "failed"
    assert job["log"][-1] == f"Error: {cli.value}"


@pytest.mark.parametrize(
    ("route", "body"),
    [("check", {"path": "diabetes.ipynb"}), ("tag", {"path": KALE, "source": "kale"})],
)
async def test_a_cookie_session_must_send_the_xsrf_token(
    http_server_client, jp_base_url: str, jp_serverapp, root: Path, route: str, body: dict
) -> None:
    # Given a browser session: the login cookie that visiting a page with the token sets
    page = await http_server_client.fetch(
        f"{jp_base_url}tree?token={jp_serverapp.identity_provider.token}", raise_error=False
    )
    cookies = "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("Set-Cookie") if "=" in c)
    assert "_xsrf=" in cookies
    xsrf = next(c.split("=", 1)[1] for c in cookies.split("; ") if c.startswith("_xsrf="))
    (root / KALE).write_text((UI / KALE).read_text())

    async def check(headers: dict) -> int:
        response = await http_server_client.fetch(
            f"{jp_base_url}nb2prod/{route}",
            method="POST",
            body=json.dumps(body),
            headers={"Cookie": cookies, **headers},
            raise_error=False,
        )
        return response.code

    # When it posts without the XSRF header, it is refused; with it, it is answered
    assert await check({}) == 403
    assert await check({"X-XSRFToken": xsrf}) == 200


@pytest.mark.parametrize("fixture", sorted(p.name for p in MALFORMED.glob("*.ipynb")))
@pytest.mark.parametrize("route", ["check", "build"])
async def test_a_malformed_notebook_gets_400_with_the_cli_sentence(
    jp_fetch, jp_root_dir: Path, fixture: str, route: str
) -> None:
    # Given a notebook nb2prod cannot read, in the server root
    path = jp_root_dir / fixture
    path.write_bytes((MALFORMED / fixture).read_bytes())
    with pytest.raises(NotebookError) as cli:
        nb2prod.check(path)
    # When a route is asked about it
    response = await post(jp_fetch, route, {"path": fixture})
    # Then it answers 400 with the sentence the CLI prints, and starts no build
    assert response.code == 400
    assert answer(response) == cli.value.to_dict()
    assert await jobs(jp_fetch) == []


@pytest.mark.parametrize("fixture", sorted(p.name for p in MALFORMED.glob("*.ipynb")))
async def test_malformed_editor_content_gets_400(jp_fetch, root: Path, fixture: str) -> None:
    # Given the editor's content is a malformed notebook, sent as the editor sends it
    data = (MALFORMED / fixture).read_bytes()
    body = b'{"path": "diabetes.ipynb", "content": ' + data + b"}"
    # When the panel checks it
    response = await jp_fetch("nb2prod", "check", method="POST", body=body, raise_error=False)
    # Then the answer is a 400 with one sentence, whichever layer refused it
    assert response.code == 400
    refused = answer(response)
    assert refused["error"] in ("NotebookError", "RequestError")
    assert refused["message"].endswith(".") and "\n" not in refused["message"]


@pytest.mark.parametrize("route", ["check", "build"])
@pytest.mark.parametrize("name", ["loop.ipynb", "a" * 5000 + ".ipynb", "sub/" * 2000 + "x.ipynb"])
async def test_unusable_paths_get_400(jp_fetch, root: Path, route: str, name: str) -> None:
    # Given a symlink loop in the root, and names too long for the file system
    (root / "loop.ipynb").symlink_to(root / "loop2.ipynb")
    (root / "loop2.ipynb").symlink_to(root / "loop.ipynb")
    # When a route is asked about one
    response = await post(jp_fetch, route, {"path": name})
    # Then it is a 400 that names the path, shortened, and no build starts
    assert response.code == 400
    assert "is not a usable notebook path" in answer(response)["message"]
    assert len(answer(response)["message"]) < 300
    assert await jobs(jp_fetch) == []


async def test_an_unknown_parameter_is_refused_before_the_build_starts(
    jp_fetch, root: Path
) -> None:
    # Given a notebook whose parameters cell sets alpha, seed and test_size
    checked = nb2prod.check(root / "diabetes.ipynb")
    # When a build is asked for with a misspelt parameter
    response = await post(jp_fetch, "build", {"path": "diabetes.ipynb", "params": {"sead": 1}})
    # Then it is a 400 in the words training uses (it calls the same check_params), and no
    # job was started
    assert response.code == 400
    with pytest.raises(ParameterError) as library:
        check_params(checked, {"sead": 1})
    assert answer(response)["message"] == str(library.value)
    assert answer(response)["error"] == "ParameterError"
    assert await jobs(jp_fetch) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"path": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # RecursionError in json.loads
        b'{"path": "diabetes.ipynb", "params": {"seed": "' + b"[" * 100_000 + b'"}}',  # in YAML
        b'{"path": "diabetes.ipynb", "params": {"seed": "&a [*a]"}}',  # a YAML list in itself
    ],
    ids=["deep-body", "deep-yaml-param", "recursive-yaml-param"],
)
async def test_pathological_bodies_get_400(jp_fetch, root: Path, body: bytes) -> None:
    response = await jp_fetch("nb2prod", "build", method="POST", body=body, raise_error=False)
    assert response.code == 400
    assert answer(response)["message"]
    assert await jobs(jp_fetch) == []


async def test_tag_imports_kale_tags_into_the_editor_content(jp_fetch, root: Path) -> None:
    # Given a Kale-tagged notebook in the root, as the editor holds it (with cell ids)
    path = root / KALE
    path.write_text((UI / KALE).read_text())
    before = path.read_bytes()
    content = json.loads(before)
    content["nbformat_minor"] = 5
    for index, cell in enumerate(content["cells"]):
        cell["id"] = f"editor-{index}"
    # When the panel imports its Kale tags
    response = await post(jp_fetch, "tag", {"path": KALE, "content": content, "source": "kale"})
    # Then the answer is the library's import of that content: nb2prod roles next to the
    # Kale tags, the report of what was mapped (naming the notebook root-relative), and the
    # file on disk is untouched
    assert response.code == 200
    expected, report = import_tags(parse_content(content, path), "kale")
    assert answer(response) == {
        "content": expected,
        "report": {**report.to_dict(), "notebook": KALE},
    }
    tags = [cell["metadata"].get("tags", []) for cell in answer(response)["content"]["cells"]]
    assert tags[2] == ["pipeline-parameters", "parameters"]
    assert tags[4] == ["skip", "nb2prod:skip"]
    assert "nb2prod:train" in tags[6] and "nb2prod:evaluate" in tags[7]
    assert [c["id"] for c in answer(response)["content"]["cells"]][:2] == ["editor-0", "editor-1"]
    mapped = {m["cell_index"]: m["tag"] for m in answer(response)["report"]["mapped"]}
    assert mapped[2] == "parameters" and mapped[4] == "nb2prod:skip"
    assert path.read_bytes() == before


async def test_tag_without_content_reads_the_file(jp_fetch, root: Path) -> None:
    (root / KALE).write_text((UI / KALE).read_text())
    response = await post(jp_fetch, "tag", {"path": KALE})  # source: auto
    assert response.code == 200
    assert answer(response)["report"]["dialect"] == "kale"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"path": "diabetes.ipynb", "source": "kale"}, "TagError"),  # no Kale tags in it
        ({"path": KALE, "source": "papermill"}, "RequestError"),
        ({"path": KALE, "content": [1], "source": "kale"}, "RequestError"),
    ],
)
async def test_tag_refusals_are_400_with_one_sentence(
    jp_fetch, root: Path, body: dict, error: str
) -> None:
    (root / KALE).write_text((UI / KALE).read_text())
    response = await post(jp_fetch, "tag", body)
    assert response.code == 400
    assert answer(response)["error"] == error
    assert answer(response)["message"].endswith(".")
    assert "content" not in answer(response)


class _Suggestion:
    """What the route hands on from the library: anything with ``to_dict()``."""

    def __init__(self, path: Path, content) -> None:
        self.data = {"notebook": path.name, "cells": [], "skipped": [], "diff": "", "seen": content}

    def to_dict(self) -> dict:
        return self.data


@pytest.fixture
def suggest_calls(jp_serverapp):
    """The server's job registry with a suggest function that records its calls (no kernel:
    the real suggestion runs in the browser test)."""
    from nb2prod.lab.jobs import JobRegistry

    calls: list = []

    def suggest(path, content=None):
        calls.append((path, content))
        return _Suggestion(path, content)

    settings = jp_serverapp.web_app.settings
    settings["nb2prod_jobs"].close()
    settings["nb2prod_jobs"] = registry = JobRegistry(suggest=suggest)
    yield calls
    registry.close()


async def test_suggest_starts_a_job_whose_answer_carries_the_suggestion(
    jp_fetch, root: Path, suggest_calls: list
) -> None:
    # Given the editor's copy of a Kale-tagged notebook in the root
    (root / KALE).write_text((UI / KALE).read_text())
    content = json.loads((UI / KALE).read_text())
    # When the panel asks for a suggestion
    started = await post(jp_fetch, "suggest", {"path": KALE, "content": content})
    # Then a suggest job starts on that notebook and that content, and once done its answer
    # carries the suggestion (the library's to_dict())
    assert started.code == 202
    assert answer(started)["job"]["kind"] == "suggest"
    job = await wait_for(jp_fetch, answer(started)["id"], timeout=10)
    assert job["state"] == "succeeded"
    assert suggest_calls == [((root / KALE).resolve(), content)]
    assert job["suggestion"]["seen"] == content
    assert job["stages"] == {"suggest": "done"}
    listed = answer(await jp_fetch("nb2prod", "jobs", params={"path": KALE}))["jobs"]
    assert [(j["id"], j["kind"]) for j in listed] == [(job["id"], "suggest")]


async def test_suggest_of_unreadable_content_is_400_and_starts_nothing(
    jp_fetch, root: Path, suggest_calls: list
) -> None:
    body = {"path": "diabetes.ipynb", "content": {"cells": "none"}}
    response = await post(jp_fetch, "suggest", body)
    assert response.code == 400
    assert answer(response)["error"] == "NotebookError"
    assert await jobs(jp_fetch) == []
    assert suggest_calls == []


SUGGESTION = {  # the shape of Suggestion.to_dict(), for the cells of kale_passengers.ipynb
    "notebook": KALE,
    "cells": [
        {"role": "features", "source": "def features(df):\n    return df", "insert_after_index": 3}
    ],
    "skipped": [5],
    "tags": [{"cell_index": 6, "role": "train"}],
    "settings": {"reference": "X_raw"},
    "notes": [],
    "parity": {"columns": [], "rows": 0, "ok": True},
    "diff": "",
}


async def test_accepting_a_suggestion_keeps_the_originals_as_skip_cells(
    jp_fetch, root: Path
) -> None:
    # Given the editor's content and a suggestion for it
    content = json.loads((UI / KALE).read_text())
    # When the panel accepts it
    response = await post(jp_fetch, "suggest/apply", {"content": content, "suggestion": SUGGESTION})
    # Then the answer is the library's applied notebook: the new cell after cell 3, the
    # replaced cell 5 kept word for word as a skip cell, and the settings written
    assert response.code == 200
    applied = answer(response)["content"]
    assert applied == nb2prod.suggest.apply(content, SUGGESTION)
    sources = ["".join(c["source"]) for c in applied["cells"]]
    assert sources[4] == "def features(df):\n    return df"
    assert applied["cells"][4]["metadata"]["tags"] == ["nb2prod:features"]
    original = applied["cells"][6]
    assert "".join(original["source"]) == "".join(content["cells"][5]["source"])
    assert original["metadata"]["tags"] == ["block:features", "prev:load", "nb2prod:skip"]
    assert applied["metadata"]["nb2prod"] == {"reference": "X_raw"}


@pytest.mark.parametrize(
    "body",
    [
        {"suggestion": SUGGESTION},
        {"content": json.loads((UI / KALE).read_text()), "suggestion": "accept"},
        {"content": {"cells": []}, "suggestion": SUGGESTION},  # made for other cells
    ],
    ids=["no-content", "suggestion-not-an-object", "other-cells"],
)
async def test_apply_refusals_are_400(jp_fetch, root: Path, body: dict) -> None:
    response = await post(jp_fetch, "suggest/apply", body)
    assert response.code == 400
    assert answer(response)["error"] == "RequestError"
    assert answer(response)["message"].endswith(".")
