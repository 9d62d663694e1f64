"""End to end in real headless Chromium: tag cells from the cell toolbar, watch the panel, build;
import a Kale notebook's tags and accept the suggested contract cells.

The tests start their own ``jupyter lab`` on a free loopback port, with a token and a temporary
root holding the churn example with every role tag removed. One tags the cells only through the
UI, builds from the panel, and checks that the bento has the same version as a build of the
hand-tagged notebook. Another opens a small Kale-tagged imperative notebook, imports its tags,
runs the suggestion (a real papermill run) and accepts it. Their screenshots are the ones in the
README and docs (``docs/images/``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import ROOT as REPO

EXAMPLE = REPO / "notebooks" / "churn.ipynb"
KALE = REPO / "tests" / "fixtures" / "ui" / "kale_passengers.ipynb"
IMAGES = REPO / "docs" / "images"
CHROMIUM = os.environ.get("NB2PROD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# (cell index, role) in the order a person would tag them: features first, so the panel
# shows the problem that tagging the schema cell then fixes.
TAGGING = [
    (10, "features"),
    (1, "parameters"),
    (5, "skip"),
    (6, "skip"),
    (8, "schema"),
    (13, "train"),
    (15, "evaluate"),
]

HAND_BUILD = (
    "import sys; from nb2prod.builder.pipeline import build; "
    "print(build(sys.argv[1], out_dir=sys.argv[2]).tag)"
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def role_tags(path: Path) -> list[list[str]]:
    cells = json.loads(path.read_text())["cells"]
    return [sorted(cell["metadata"].get("tags", [])) for cell in cells]


def untagged_copy(source: Path, dest: Path) -> None:
    """The example with its role tags removed (settings and other tags stay)."""
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        tags = [t for t in cell["metadata"].pop("tags", []) if not _is_role_tag(t)]
        if tags:
            cell["metadata"]["tags"] = tags
    dest.write_text(json.dumps(nb, indent=1) + "\n")


def _is_role_tag(tag: str) -> bool:
    return tag == "parameters" or tag.startswith("nb2prod:")


def bento_env(home: Path) -> dict[str, str]:
    return {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}


@contextmanager
def running_lab(tmp: Path, *args: str) -> Iterator[dict]:
    """A real ``jupyter lab`` on 127.0.0.1 with a token and its own root, stopped afterwards."""
    root = tmp / "root"
    root.mkdir()
    untagged_copy(EXAMPLE, root / EXAMPLE.name)
    notification = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **bento_env(tmp / "bentoml"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
    }
    port, token = free_port(), secrets.token_hex(16)
    command = [
        *(sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root"),
        *("--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}"),
        *(f"--ServerApp.root_dir={root}", "--ServerApp.allow_unauthenticated_access=False"),
        *args,
    ]
    url = f"http://127.0.0.1:{port}"
    with (tmp / "lab.log").open("w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while True:
                assert proc.poll() is None, (tmp / "lab.log").read_text()
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "jupyter lab did not start in 240 s"
                    time.sleep(0.5)
            yield {"url": url, "token": token, "root": root, "tmp": tmp}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with running_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    """Stand in for pytest-jupyter's autouse fixtures (test_routes loads that plugin).

    Their teardown closes the current event loop and runs a ServerApp cleanup on it; here that
    loop is the one Playwright's sync API is running, so teardown failed. This module starts
    its own ``jupyter lab`` in a subprocess and needs neither.
    """
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """See ``jp_asyncio_loop``: no in-process ServerApp here to clean up."""
    yield


@pytest.fixture(scope="module")
def browser() -> Iterator:
    assert Path(CHROMIUM).exists(), (
        f"No Chromium at {CHROMIUM}: install Debian's with `apt-get install -y chromium`."
    )
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    page = browser.new_page(viewport={"width": 1680, "height": 960})
    page.set_default_timeout(30_000)
    yield page
    page.close()


def open_notebook(page, lab: dict, name: str = EXAMPLE.name, count: int = 16):
    """Open a notebook (the example) in JupyterLab with the nb2prod panel shown; answer its
    cells and the panel."""
    from playwright.sync_api import expect

    # ?reset: a fresh workspace, not the notebooks an earlier test left open on this server
    page.goto(f"{lab['url']}/lab/tree/{name}?reset&token={lab['token']}")
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells).to_have_count(count, timeout=60_000)
    page.locator('.jp-SideBar.jp-mod-left [data-id="filebrowser"]').click()  # more room
    expect(page.locator("#filebrowser")).to_be_hidden()
    page.locator('.jp-SideBar.jp-mod-right [data-id="nb2prod-panel"]').click()
    panel = page.locator("#nb2prod-panel")
    expect(panel).to_be_visible()
    return cells, panel


def test_without_the_server_extension_the_panel_gives_the_fix(tmp_path: Path, browser) -> None:
    from playwright.sync_api import expect

    # Given JupyterLab whose nb2prod server extension is disabled
    config = tmp_path / "no_nb2prod.json"
    config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"nb2prod": False}}}))
    with running_lab(tmp_path, f"--config={config}") as lab:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        # When the notebook is opened
        _, panel = open_notebook(page, lab)
        # Then the panel says what to run
        expect(panel.locator(".jp-nb2prod-notice")).to_have_text(
            "The nb2prod server extension is not enabled: run `pip install nb2prod` "
            "(or `jupyter server extension enable nb2prod`) and restart JupyterLab."
        )
        page.close()


@pytest.fixture
def hand_build(lab: dict) -> Iterator[subprocess.Popen]:
    """The hand-tagged notebook's build, to compare with; it runs while the UI is driven."""
    hand = lab["tmp"] / "hand"
    hand.mkdir()
    shutil.copy(EXAMPLE, hand / EXAMPLE.name)
    proc = subprocess.Popen(
        [sys.executable, "-c", HAND_BUILD, str(hand / EXAMPLE.name), str(hand / "bentos")],
        env=bento_env(lab["tmp"] / "bentoml-hand"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_tag_from_the_toolbar_watch_the_panel_and_build(
    lab: dict, page, hand_build: subprocess.Popen
) -> None:
    from playwright.sync_api import expect

    # Given JupyterLab open on the untagged churn notebook, with the nb2prod panel shown
    cells, panel = open_notebook(page, lab)
    expect(panel.locator(".jp-nb2prod-summary")).to_contain_text("error(s)")
    expect(panel.locator("textarea[name=gates]")).to_have_value("roc_auc >= 0.70")

    for step, (index, role) in enumerate(TAGGING):
        # When a role is set from the cell's toolbar
        cell = cells.nth(index)
        cell.locator(".jp-InputPrompt").click()
        expect(cell).to_have_class(_has("jp-mod-active"))
        button = cell.locator('.jp-cell-toolbar [data-command="nb2prod:pick-role"]')
        expect(button).to_contain_text("role: none")
        button.click()
        page.locator(".jp-Dialog select").select_option(role)
        page.locator(".jp-Dialog .jp-mod-accept").click()
        # Then the cell shows its chip and the panel's pipeline lists it
        expect(cell).to_have_class(_has(f"jp-nb2prod-role-{role}"))
        expect(button).to_contain_text(f"role: {role}")
        stage = panel.locator(f'.jp-nb2prod-stage[data-role="{role}"]')
        expect(stage.locator(f'[data-cell-index="{index}"]')).to_be_visible()
        if step == 0:
            # And with only the features cell tagged, check finds that it needs the schema cell
            finding = panel.locator(".jp-nb2prod-finding", has_text="uses `Customer`")
            expect(finding).to_be_visible()
            finding.click()
            expect(cells.nth(10)).to_have_class(_has("jp-mod-active"))
            page.screenshot(path=IMAGES / "jupyterlab-findings.png")

    # Then the panel shows the whole pipeline and no problems
    expect(panel.locator(".jp-nb2prod-summary")).to_contain_text("No problems", timeout=15_000)
    expect(panel.locator(".jp-nb2prod-finding")).to_have_count(0)
    cells.nth(8).locator(".jp-InputPrompt").click()  # the skip, schema and features chips
    page.screenshot(path=IMAGES / "jupyterlab-roles.png")

    # Before any build, the panel shows the pipeline the server sends, every step pending
    steps = panel.locator(".jp-nb2prod-step")
    expect(steps).to_have_count(5)
    assert steps.evaluate_all("nodes => nodes.map(n => n.dataset.stage)") == [
        "check", "train", "lift", "test", "bento",
    ]  # fmt: skip
    expect(panel.locator('.jp-nb2prod-step[data-stage="test"]')).to_have_text("property tests")
    expect(panel.locator(".jp-nb2prod-step.jp-mod-pending")).to_have_count(5)

    # When Build is clicked
    panel.locator(".jp-nb2prod-build").click()
    # Then the notebook is saved, the stages run, and the bento tag and links appear
    expect(panel.locator('.jp-nb2prod-step[data-stage="train"]')).to_have_class(
        _has("jp-mod-(running|done)"), timeout=60_000
    )
    tag = panel.locator(".jp-nb2prod-tag")
    ended = panel.locator(".jp-nb2prod-tag, .jp-nb2prod-build-error")
    expect(ended).to_be_visible(timeout=900_000)
    if not tag.is_visible():
        page.screenshot(path=lab["tmp"] / "build-failed.png")
    assert tag.is_visible(), (
        f"The build failed: {panel.locator('.jp-nb2prod-result').inner_text()}\n"
        f"{panel.locator('.jp-nb2prod-log').inner_text()}"
    )
    expect(panel.locator(".jp-nb2prod-step.jp-mod-done")).to_have_count(5)
    expect(panel.locator(".jp-nb2prod-file-link", has_text="service.py")).to_be_visible()
    expect(panel.locator(".jp-nb2prod-log")).to_contain_text("[bento] done")
    panel.evaluate("node => { node.scrollTop = node.scrollHeight; }")  # the result, in view
    page.screenshot(path=IMAGES / "jupyterlab-build.png")
    ui_tag = tag.inner_text().strip()
    assert ui_tag.startswith("churn:")

    # And the notebook tagged through the UI carries the same tags as the hand-tagged one,
    saved = lab["root"] / EXAMPLE.name
    assert role_tags(saved) == role_tags(EXAMPLE)
    # and builds the same bento version as the hand-tagged notebook does
    out, err = hand_build.communicate(timeout=900)
    assert hand_build.returncode == 0, err
    assert out.strip().splitlines()[-1] == ui_tag


def test_import_kale_tags_then_accept_the_suggested_contract_cells(lab: dict, page) -> None:
    from playwright.sync_api import expect

    # Given a Kale-tagged imperative notebook (nbformat 4.4, local CSVs) open in JupyterLab
    for path in KALE.parent.glob(f"{KALE.stem}*"):
        shutil.copy(path, lab["root"] / path.name)
    saved = lab["root"] / KALE.name
    original = json.loads(saved.read_text())["cells"]
    cells, panel = open_notebook(page, lab, KALE.name, len(original))

    # When check has found the Kale tags, the panel offers their import (and only Kale's)
    offer = panel.locator(".jp-nb2prod-import-tags")
    expect(offer).to_have_count(1, timeout=30_000)
    expect(offer).to_have_text("Import Kale tags")
    expect(panel.locator(".jp-nb2prod-finding", has_text="Kale's `skip` tag")).to_be_visible()
    offer.click()
    # Then the editor's cells carry the nb2prod roles next to the Kale tags, the report says
    # what was mapped and why, and nothing was written behind the editor
    for index, role in ((2, "parameters"), (4, "skip"), (6, "train"), (7, "evaluate")):
        expect(cells.nth(index)).to_have_class(_has(f"jp-nb2prod-role-{role}"))
    report = panel.locator(".jp-nb2prod-import-report")
    expect(report).to_contain_text("Imported Kale tags: ")
    expect(report.locator(".jp-nb2prod-report-row", has_text="skip → nb2prod:skip")).to_be_visible()
    expect(report.locator(".jp-nb2prod-report-row", has_text="imports → untagged")).to_be_visible()
    expect(offer).to_have_count(0)  # check re-ran on the new content: no foreign-tags left
    assert json.loads(saved.read_text())["cells"] == original

    # When the contract cells are suggested
    panel.locator(".jp-nb2prod-suggest-button").click()
    expect(panel.locator(".jp-nb2prod-suggest-progress")).to_contain_text("running", timeout=30_000)
    suggestion = panel.locator(".jp-nb2prod-suggestion")
    expect(suggestion.locator(".jp-nb2prod-diff, .jp-nb2prod-build-error")).to_be_visible(
        timeout=300_000
    )
    assert suggestion.locator(".jp-nb2prod-diff").is_visible(), suggestion.inner_text()
    # Then the panel shows the diff, line by line, with the parity table and Accept
    added = suggestion.locator(".jp-nb2prod-diff-line.jp-mod-add")
    expect(added.filter(has_text="def features(df: DataFrame[")).to_have_count(1)
    expect(added.filter(has_text="class RawInput(pa.DataFrameModel)")).to_have_count(1)
    expect(suggestion.locator(".jp-nb2prod-diff-line.jp-mod-del").first).to_be_visible()
    expect(suggestion.locator(".jp-nb2prod-parity tr", has_text="fare")).to_be_visible()
    expect(suggestion.locator(".jp-nb2prod-suggest-summary")).to_contain_text("skip cell")
    widen_right_sidebar(page, 760)
    lifted = added.filter(has_text='tags=["nb2prod:features"]')
    lifted.evaluate("node => { node.parentElement.scrollTop = node.offsetTop - 120; }")
    panel.evaluate(
        "node => { node.scrollTop = node.querySelector('.jp-nb2prod-suggestion').offsetTop - 30; }"
    )
    page.screenshot(path=IMAGES / "suggest-diff.png")

    # When the suggestion is accepted and the notebook saved
    suggestion.locator(".jp-nb2prod-accept").click()
    expect(suggestion.locator(".jp-nb2prod-accepted")).to_contain_text("Save the notebook")
    expect(page.locator(".jp-Notebook .jp-nb2prod-role-schema")).to_have_count(1)
    expect(page.locator(".jp-Notebook .jp-nb2prod-role-features")).to_have_count(1)
    cells.first.locator(".jp-InputPrompt, .jp-InputArea").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while "nb2prod:features" not in saved.read_text():
        assert time.monotonic() < deadline, "the accepted notebook was not saved"
        time.sleep(0.5)
    # Then the file holds the new contract cells, and every original cell word for word:
    # the ones the suggestion replaces are now skip cells
    after = json.loads(saved.read_text())["cells"]
    sources = ["".join(c["source"]) for c in after]
    roles = [sorted(t for t in c["metadata"].get("tags", []) if _is_role_tag(t)) for c in after]
    for cell in original:
        assert "".join(cell["source"]) in sources
    features = "".join(original[5]["source"])
    assert roles[sources.index(features)] == ["nb2prod:skip"]
    assert ["nb2prod:schema"] in roles and ["nb2prod:features"] in roles
    assert roles.count(["nb2prod:train"]) == 1
    import nb2prod

    checked = nb2prod.check(saved)
    assert checked.ok, [f.message for f in checked.findings if f.severity == "error"]


def widen_right_sidebar(page, width: int) -> None:
    """Drag the handle between the main area and the right sidebar until the sidebar is
    ``width`` pixels wide (the diff reads better wide)."""
    sidebar = page.locator("#jp-right-stack")
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").last
    box, bar = handle.bounding_box(), sidebar.bounding_box()
    assert box and bar
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - (width - bar["width"]), y, steps=8)
    page.mouse.up()


def _has(pattern: str):
    import re

    return re.compile(rf"(^|\s){pattern}(\s|$)")
