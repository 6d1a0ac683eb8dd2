"""Group mode end to end in a real browser: upload a table of sets, switch to one prediction per
group, train, and see a set's row × row map. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import pytest
from browser_support import ARTIFACTS, CHROMIUM_ARGS, chromium_path, dashboard_server
from test_sets import planted_table

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 60_000


def test_group_mode_train_and_see_a_set_map(tmp_path):
    executable = chromium_path()
    frame = planted_table(150, seed=0)
    frame.insert(1, "day", range(len(frame)))
    path = tmp_path / "portfolios.csv"
    frame.to_csv(path, index=False)
    with (
        dashboard_server() as url,
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_text("Ready to train").wait_for()
        page.get_by_text("Upload a CSV").click()
        page.locator('input[type="file"]').set_input_files(str(path))
        page.get_by_role("heading", name="portfolios.csv").wait_for()
        page.get_by_text("Choose the column to predict").wait_for()
        page.get_by_role("combobox", name="Target (the column to predict)").click()
        page.get_by_role("option", name="label", exact=True).click()
        page.get_by_text("Ready to train").wait_for()
        page.get_by_text("One prediction per group").click()
        page.get_by_text("150 groups").wait_for()
        page.get_by_role("combobox", name="Order a group's rows by").click()
        page.get_by_role("option", name="day", exact=True).click()
        page.get_by_text("one prediction per group of g").wait_for()
        page.screenshot(path=ARTIFACTS / "sets-1-data.png", full_page=True)

        page.get_by_role("link", name="Train").click()
        page.get_by_text("per group of g").first.wait_for()
        page.get_by_label("Layers").fill("1")
        page.get_by_label("Time budget (s)").fill("5")
        page.get_by_role("button", name="Train").click()
        page.get_by_text("Results on the test split").wait_for(timeout=120_000)
        page.get_by_text("Gradient boosting sees each group").wait_for()
        page.screenshot(path=ARTIFACTS / "sets-2-train.png", full_page=True)

        page.get_by_role("link", name="Explore").click()
        page.get_by_role("heading", name="One set").wait_for()
        page.get_by_text("The set's rows, most attended first").wait_for()
        heatmap = page.locator(".js-plotly-plot .heatmaplayer")
        heatmap.first.wait_for()
        assert heatmap.count() == 1
        title = page.locator(".js-plotly-plot .gtitle", has_text="Set G")
        assert "mean of heads" in title.first.text_content()
        heatmap.first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=ARTIFACTS / "sets-3-explore.png")
        browser.close()
