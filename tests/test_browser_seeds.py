"""A run of two seed members in a real browser: opened from the runs folder, explored with its
member picker, and its stability across seeds computed on demand.

A screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from browser_support import ARTIFACTS
from test_browser import browser, open_app  # noqa: F401 (the browser fixture)
from test_browser_open_run import url  # noqa: F401 (the server on this module's `runs`)
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.pipelines.train_run import train_run

pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 120_000  # ms: opening, recording and the stability on a busy machine


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder with one run of two seed members, its rows saved."""
    folder = tmp_path_factory.mktemp("runs")
    frame = tiny_frame("binary", rows=160)
    config = replace(QUICK, max_epochs=2)
    run = train_run(
        frame, "y", model_config=TINY_MODEL, train_config=config, seeds=2, parallel=False
    )
    run.save(folder / "seeded", include_data=True)
    return folder


def test_explore_shows_the_member_picker_and_the_stability_across_seeds(browser, url):  # noqa: F811
    context, page = open_app(browser, url)
    page.get_by_role("link", name="Open run").click()
    page.get_by_text("From the runs folder").click()
    page.get_by_role("combobox", name="Run").click()
    page.get_by_role("option", name="seeded").first.click()
    page.get_by_role("button", name="Open this run").click()
    page.get_by_text("Open now: seeded").wait_for(timeout=WAIT)
    page.get_by_role("link", name="Explore its attention").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT)
    page.get_by_role("heading", name="Stability across seeds").wait_for()
    assert page.get_by_role("combobox", name="Seed member").count() == 1
    page.get_by_text("This run holds 2 seed members").wait_for()
    page.screenshot(path=ARTIFACTS / "explore-members.png")
    page.get_by_role("button", name="Compute the stability across the 2 members").click()
    page.get_by_text("Do the members rank the columns alike?").wait_for(timeout=WAIT)
    page.get_by_text("Head matching").wait_for()
    titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
    assert any("mean of the members" in t for t in titles), titles
    assert any("SD across the members" in t for t in titles), titles
    page.get_by_text("Head matching").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "explore-stability.png", full_page=True)
    context.close()
