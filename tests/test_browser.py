"""End to end in a real browser: Playwright drives Debian's Chromium against `streamlit run`.

Screenshots of each page are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import pytest
from browser_support import ARTIFACTS, CHROMIUM_ARGS, chromium_path, dashboard_server

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def url():
    with dashboard_server() as address:
        yield address


def open_app(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_text("Ready to train").wait_for()
    return context, page


def upload(page, tmp_path, name: str, content: bytes) -> None:
    page.get_by_text("Upload a CSV").click()
    path = tmp_path / name
    path.write_bytes(content)
    page.locator('input[type="file"]').set_input_files(str(path))


def test_sessions_do_not_see_each_others_tables(browser, url, tmp_path):
    first, page_a = open_app(browser, url)
    second, page_b = open_app(browser, url)
    rows = "".join(f"{i},{'xy'[i % 2]},{i % 3}\n" for i in range(40))
    upload(page_a, tmp_path, "mine.csv", ("amount,kind,label\n" + rows).encode())
    page_a.get_by_role("heading", name="mine.csv").wait_for()
    page_a.screenshot(path=ARTIFACTS / "data-upload.png", full_page=True)
    page_b.reload()
    page_b.get_by_text("Ready to train").wait_for()
    assert page_b.get_by_text("mine.csv").count() == 0
    assert page_b.get_by_text("penguins.csv").count() > 0
    first.close()
    second.close()


def test_a_bad_upload_is_refused_and_the_table_kept(browser, url, tmp_path):
    context, page = open_app(browser, url)
    upload(page, tmp_path, "book.csv", b"PK\x03\x04" + b"\x00" * 64)
    page.get_by_text("book.csv was not loaded").wait_for()
    assert page.get_by_text("penguins.csv").count() > 0
    page.screenshot(path=ARTIFACTS / "data-refused.png", full_page=True)
    context.close()


def test_upload_train_explore_select_a_head_and_download_the_report(browser, url, tmp_path):
    context, page = open_app(browser, url)
    rows = []
    rng = __import__("random").Random(0)
    for _ in range(300):
        spend, plan = rng.uniform(0, 100), rng.choice(["basic", "premium"])
        label = int((spend > 50) == (plan == "basic"))
        rows.append(f"{spend:.2f},{rng.uniform(0, 1):.3f},{plan},{rng.choice('xyz')},{label}")
    csv = "spend,noise,plan,region,churned\n" + "\n".join(rows) + "\n"
    upload(page, tmp_path, "churn.csv", csv.encode())
    page.get_by_role("heading", name="churn.csv").wait_for()
    page.get_by_text("Choose the column to predict").wait_for()
    page.get_by_role("combobox", name="Target (the column to predict)").click()
    page.get_by_role("option", name="churned").click()
    page.get_by_text("Ready to train").wait_for()
    page.screenshot(path=ARTIFACTS / "1-data.png", full_page=True)

    page.get_by_role("link", name="Train").click()
    page.get_by_label("Time budget (s)").fill("5")
    page.get_by_role("button", name="Train").click()
    page.get_by_text("Results on the test split").wait_for(timeout=120_000)
    page.screenshot(path=ARTIFACTS / "2-train.png", full_page=True)

    page.get_by_role("link", name="Explore").click()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_text("Divergence from the untrained model").wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTIFACTS / "3-explore-all-heads.png", full_page=True)
    # the control trains in the background and the page reruns when it lands, which closes an
    # open menu and can lose a download asked for meanwhile: go on once it has landed
    page.get_by_text("Verdict pending").first.wait_for(state="detached", timeout=180_000)
    heads = page.get_by_role("combobox", name="Heads")
    playwright.expect(heads).to_have_count(1, timeout=60_000)  # a rerun's fading copy is gone
    heads.click()
    page.get_by_role("option", name="head 1").click()
    page.get_by_text("head 1").first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTIFACTS / "4-explore-one-head.png", full_page=True)

    page.get_by_role("link", name="Export").click()
    with page.expect_download(timeout=180_000) as download:  # the report is built on click
        page.get_by_role("button", name="Download the HTML report").click()
    report = tmp_path / "report.html"
    download.value.save_as(report)
    text = report.read_text()
    assert "plotly" in text and "churned" in text
    page.screenshot(path=ARTIFACTS / "5-export.png", full_page=True)
    context.close()
