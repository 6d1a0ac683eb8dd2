"""The Compare page in a real browser: two seeds trained in one session, then compared: both maps
side by side, their difference and the importances drawn, no axis label clipped.

Screenshots are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import pytest
from browser_support import ARTIFACTS
from test_browser import browser, open_app, url  # noqa: F401 (fixtures)
from test_browser_views import TRAINED, clipped_labels, settle

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def train(page, seed: int) -> None:
    """Train the penguins table with the smallest budget and `seed`, and wait for its results."""
    page.get_by_role("link", name="Train").click()
    page.get_by_label("Time budget (s)").fill("5")
    page.get_by_label("Seed", exact=True).fill(str(seed))
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_role("button", name="Cancel training").wait_for(timeout=60_000)
    page.get_by_role("button", name="Cancel training").wait_for(state="detached", timeout=TRAINED)
    page.get_by_text("Results on the test split").wait_for(timeout=TRAINED)


def open_page(page, link: str, text: str) -> None:
    """Click the navigation link `link` until the page shows `text`: a click that lands while
    a background job (the control model) reruns the page can be lost."""
    for _ in range(3):
        page.get_by_role("link", name=link).click()
        try:
            page.get_by_text(text).first.wait_for(timeout=20_000)
            return
        except playwright.TimeoutError:
            continue
    page.get_by_text(text).first.wait_for(timeout=20_000)


def test_two_seeds_compared_side_by_side(browser, url):  # noqa: F811
    context, page = open_app(browser, url)
    open_page(page, "Compare", "Train a model")
    train(page, 0)
    open_page(page, "Compare", "needs a second run")
    page.screenshot(path=ARTIFACTS / "compare-one-run.png", full_page=True)

    train(page, 1)
    open_page(page, "Compare", "B: compare it with")
    page.get_by_role("button", name="Compare", exact=True).wait_for()
    chosen = page.get_by_label("B: compare it with").input_value()
    assert "run 1" in chosen and "seed 0" in chosen  # B: the first run, remembered
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_text("How far apart each map is").wait_for(timeout=120_000)
    settle(page)
    plots = page.locator(".js-plotly-plot")
    playwright.expect(plots).to_have_count(3, timeout=60_000)
    assert "both runs" in plots.nth(0).locator(".gtitle").text_content()
    assert "seed 0" in plots.nth(0).text_content() and "seed 1" in plots.nth(0).text_content()
    assert "−" in plots.nth(1).locator(".gtitle").text_content()
    assert "Spearman" in plots.nth(2).text_content()
    assert clipped_labels(page) == []
    page.screenshot(path=ARTIFACTS / "compare.png", full_page=True)
    context.close()
