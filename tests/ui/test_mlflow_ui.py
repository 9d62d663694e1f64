"""The MLflow UI on the session's store, in real headless Chromium: nb2prod's builds are runs a
person can read there, and the registry shows the versions and their aliases.

The screenshots are the ones in docs/lifecycle.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BIN, ROOT, Built, background, free_port, mlflow_server_env

CHROMIUM = os.environ.get("NB2PROD_CHROMIUM", "/usr/bin/chromium")
IMAGES = ROOT / "docs" / "images"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def mlflow_ui(churn: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` (what ``mlflow ui`` runs) on the store the session's builds used."""
    from nb2prod.lifecycle import registry

    uri = os.environ["MLFLOW_TRACKING_URI"]
    # the session build, promoted, so the registry page shows an alias beside a version
    version = churn.result.tracking["version"]
    registry.set_alias("churn", "champion", version, uri=uri)
    folder = tmp_path_factory.mktemp("mlflow-ui")
    port = free_port()
    command = [
        *(str(BIN / "mlflow"), "server", "--backend-store-uri", uri, "--workers", "1"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    base = f"http://127.0.0.1:{port}"
    with background(command, f"{base}/health", folder / "server.log", mlflow_server_env()):
        yield base


@pytest.fixture
def page() -> Iterator:
    assert Path(CHROMIUM).exists(), (
        f"No Chromium at {CHROMIUM}: install Debian's with `apt-get install -y chromium`."
    )
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--disable-gpu", "--no-first-run"]
        )
        page = browser.new_page(viewport={"width": 1500, "height": 820})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def close_assistant(page) -> None:
    """MLflow 3.17 opens its assistant panel beside every page; the screenshots want room."""
    close = page.locator('[aria-label="Close"], [aria-label="close"]').first
    if close.count() and close.is_visible():
        close.click()


def test_the_builds_are_runs_in_the_mlflow_ui_and_the_registry_shows_the_champion(
    churn: Built, mlflow_ui: str, page
) -> None:
    from playwright.sync_api import expect

    from nb2prod.lifecycle import registry

    experiment = registry.connect().get_experiment_by_name("churn")
    # The experiment opens on its runs: nb2prod marks it as model training, not GenAI
    page.goto(f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs")
    run_name = f"build {churn.tag}"
    expect(page.get_by_text(run_name).first).to_be_visible(timeout=60_000)
    training = page.get_by_text("Model training", exact=True)
    if training.count():  # MLflow 3.17's sidebar switch between GenAI and model training
        training.first.click()
        expect(page.get_by_text(run_name).first).to_be_visible(timeout=60_000)
    close_assistant(page)
    page.screenshot(path=IMAGES / "mlflow-runs.png")
    # A run's page holds the metrics, gates and tags nb2prod recorded
    page.get_by_text(run_name).first.click()
    expect(page.get_by_text("gate.roc_auc.value").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("notebook_sha256").first).to_be_visible(timeout=60_000)
    close_assistant(page)
    page.screenshot(path=IMAGES / "mlflow-run.png")
    # The registry lists the versions, with the champion alias
    page.goto(f"{mlflow_ui}/#/models/churn")
    expect(page.get_by_text("@ champion").or_(page.get_by_text("champion")).first).to_be_visible(
        timeout=60_000
    )
    close_assistant(page)
    page.screenshot(path=IMAGES / "mlflow-registry.png")
