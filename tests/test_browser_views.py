"""The Explore page's figures in a real browser: a click on a small multiple enlarges its head,
no axis label of a map is clipped (on the penguins table and on a three-column table), and the
rollout chart keeps a readable height with few columns.

A screenshot of the Explore page is saved to ``docs/images/explore.png`` (the README shows it),
others under ``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import random

import pytest
from browser_support import ARTIFACTS, ROOT
from test_browser import browser, open_app, upload, url  # noqa: F401 (fixtures)

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAINED = 180_000  # ms: training, recording and the control on a busy machine
#: Every tick label of every plot, with its own box and its figure's svg box.
LABEL_BOXES = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
    const svg = plot.querySelector('svg.main-svg').getBoundingClientRect();
    return [...plot.querySelectorAll('.xtick text, .ytick text')].map(t => {
        const b = t.getBoundingClientRect();
        return {text: t.textContent, left: b.left - svg.left, right: svg.right - b.right,
                top: b.top - svg.top, bottom: svg.bottom - b.bottom};
    });
})"""


def train_and_explore(page) -> None:
    """Train the table loaded with the smallest budget, open Explore and wait for the control,
    whose landing reruns the page (and would undo a click made meanwhile)."""
    page.get_by_role("link", name="Train").click()
    page.get_by_label("Time budget (s)").fill("5")
    page.get_by_role("button", name="Train").click()
    page.get_by_text("Results on the test split").wait_for(timeout=TRAINED)
    page.get_by_role("link", name="Explore").click()
    page.locator(".js-plotly-plot").first.wait_for()
    pending = page.get_by_text("Control model: pending")
    with contextlib.suppress(playwright.TimeoutError):  # the control starts once the run is in
        pending.wait_for(timeout=15_000)
    pending.wait_for(state="detached", timeout=TRAINED)
    settle(page)


def settle(page) -> None:
    """Wait until the page has finished its rerun."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for()
    page.wait_for_timeout(1000)


def clipped_labels(page) -> list[dict]:
    """The tick labels that reach past their figure's edges (a pixel of rounding allowed)."""
    boxes = page.evaluate(LABEL_BOXES)
    assert boxes, "no tick label found"
    return [b for b in boxes if min(b["left"], b["right"], b["top"], b["bottom"]) < -1]


def choose(page, box: str, option: str) -> None:
    """Pick `option` of the menu `box` (again, when a rerun closed the menu before the click)."""
    for attempt in range(3):
        page.get_by_role("combobox", name=box).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            break
        except playwright.TimeoutError:
            if attempt == 2:
                raise
    page.wait_for_timeout(1500)


def test_a_click_on_a_small_multiple_enlarges_that_head_and_no_label_is_clipped(browser, url):  # noqa: F811
    context, page = open_app(browser, url)
    train_and_explore(page)
    grid = page.locator(".js-plotly-plot").first
    assert "every head" in grid.locator(".gtitle").text_content()
    assert clipped_labels(page) == []
    page.screenshot(path=ARTIFACTS / "explore-every-head.png", full_page=True)
    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    menus = page.locator('[data-testid="stSelectbox"]').first  # the menus, then the maps
    menus.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    page.screenshot(path=images / "explore.png")

    grid.locator('.nsewdrag[data-subplot="x3y3"]').click()  # the third small multiple: head 2
    title = page.locator(".js-plotly-plot .gtitle").filter(has_text="head 2")
    title.wait_for(timeout=30_000)
    assert "every head" not in title.text_content()
    assert "every row recorded" in title.text_content(), "the title names the rows shown"
    assert len(page.locator(".js-plotly-plot").first.locator(".nsewdrag").all()) == 1
    assert clipped_labels(page) == []
    page.screenshot(path=ARTIFACTS / "explore-enlarged-head.png", full_page=True)

    choose(page, "Rows", "one row")  # a row's values on the axes, never cut off
    page.get_by_role("radio", name="wrong predictions only").wait_for()
    grid = page.locator('[data-testid="stDataFrame"] canvas').first
    grid.wait_for()
    box = grid.bounding_box()  # the grid's own layer takes the clicks: click where it is
    page.mouse.click(box["x"] + 18, box["y"] + 52)  # the first row's selection cell
    page.locator(".js-plotly-plot .gtitle").filter(has_text="one row").wait_for(timeout=30_000)
    assert clipped_labels(page) == []
    page.screenshot(path=ARTIFACTS / "explore-one-row.png", full_page=True)
    context.close()


def three_columns(rows: int = 300) -> bytes:
    """A table like a small survival table: one number, one category, the target."""
    rng = random.Random(0)
    lines = ["age,sex,survived"]
    for _ in range(rows):
        age, sex = rng.uniform(1, 80), rng.choice(["female", "male"])
        lines.append(f"{age:.1f},{sex},{int((sex == 'female') != (age > 60))}")
    return ("\n".join(lines) + "\n").encode()


def test_a_three_column_table_keeps_its_labels_and_a_readable_rollout(browser, url, tmp_path):  # noqa: F811
    context, page = open_app(browser, url)
    upload(page, tmp_path, "survival.csv", three_columns())
    page.get_by_role("heading", name="survival.csv").wait_for()
    page.get_by_text("Choose the column to predict").wait_for()
    choose(page, "Target (the column to predict)", "survived")
    page.get_by_text("Ready to train").wait_for()
    train_and_explore(page)
    assert clipped_labels(page) == []
    page.screenshot(path=ARTIFACTS / "explore-three-columns.png", full_page=True)

    choose(page, "Map", "attention received, rolled out (every layer)")
    assert page.get_by_role("combobox", name="Layer").count() == 0, "the rollout spans layers"
    rollout = page.locator(".js-plotly-plot").filter(has_text="rolled out").first
    rollout.wait_for()
    heights = [plot.bounding_box()["height"] for plot in rollout.locator(".nsewdrag").all()]
    assert heights and min(heights) >= 150, heights
    assert clipped_labels(page) == []
    page.screenshot(path=ARTIFACTS / "explore-rollout-three-columns.png", full_page=True)
    context.close()
