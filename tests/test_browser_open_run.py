"""Open run in a real browser: a refused zip, then a zipped run and one from the runs folder.

Screenshots are saved under ``test-artifacts/``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from browser_support import ARTIFACTS, dashboard_server
from test_browser import browser, open_app  # noqa: F401 (the browser fixture)
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.pipelines.archive import RUNS_DIR_ENV, zip_run
from mrta.pipelines.explain import explain
from mrta.pipelines.train_run import train_run

pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder with one run (rows saved), and the same run zipped beside it."""
    folder = tmp_path_factory.mktemp("runs")
    frame = tiny_frame("multiclass", rows=120)
    run = train_run(frame, "y", model_config=TINY_MODEL, train_config=replace(QUICK, max_epochs=1))
    run.save(folder / "tiny", include_data=True)
    zipped = zip_run(run, explain(run), include_data=True, folder="tiny-run")
    (folder.parent / "tiny-run.zip").write_bytes(zipped)
    (folder.parent / "broken.zip").write_bytes(zipped[: len(zipped) // 2])
    return folder


@pytest.fixture(scope="module")
def url(runs):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RUNS_DIR_ENV, str(runs))  # the server inherits it
        with dashboard_server() as address:
            yield address


def test_a_zipped_run_is_refused_when_broken_and_explored_when_whole(browser, url, runs):  # noqa: F811
    context, page = open_app(browser, url)
    page.get_by_role("link", name="Open run").click()
    upload = page.locator('input[type="file"]')
    upload.set_input_files(str(runs.parent / "broken.zip"))
    page.get_by_text("broken.zip is not a zip file").wait_for()
    page.screenshot(path=ARTIFACTS / "open-refused.png", full_page=True)
    upload.set_input_files(str(runs.parent / "tiny-run.zip"))
    page.get_by_role("button", name="Open this run").click()
    page.get_by_text("Open now").wait_for()
    page.screenshot(path=ARTIFACTS / "open-zip.png", full_page=True)
    page.get_by_role("link", name="Explore its attention").click()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_text("Divergence from the untrained model").wait_for()
    page.screenshot(path=ARTIFACTS / "open-explore.png", full_page=True)
    context.close()


def test_a_run_from_the_runs_folder_opens_with_progress(browser, url):  # noqa: F811
    context, page = open_app(browser, url)
    page.get_by_role("link", name="Open run").click()
    page.get_by_text("From the runs folder").click()
    page.get_by_role("combobox", name="Run").click()
    page.get_by_role("option", name="tiny").first.click()
    page.get_by_text("the rows the run was trained on").wait_for()
    page.get_by_role("button", name="Open this run").click()
    page.get_by_text("Open now: tiny").wait_for(timeout=120_000)
    # the sidebar says which run is open: drawn after the page, so it may come a moment later
    page.get_by_text("Run: tiny").first.wait_for()
    page.screenshot(path=ARTIFACTS / "open-folder.png", full_page=True)
    context.close()
