"""The demo in a real browser: Monitoring filtered, a trace opened from the list, its span tree.

Set ``LOOPLAB_SCREENSHOTS=DIR`` to keep screenshots of the pages visited (the README's comes from here).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from looplab.demo import seed
from tests.browser import CHROMIUM_ARGS, chromium_path, open_first_row, running_app, wait_idle

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("LOOPLAB_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    db = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    seed(db)
    with running_app(db) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2000})
        yield base, page
        browser.close()


def _metric(page, label: str) -> str:  # type: ignore[no-untyped-def]
    tile = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return tile.locator('[data-testid="stMetricValue"]').inner_text()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def test_demo_monitoring_filter_then_open_a_trace_from_the_list(browser_page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, page = browser_page
    page.goto(f"{base}/monitoring")
    wait_idle(page)
    expect(page.get_by_role("heading", name="Monitoring", exact=True)).to_be_visible()
    assert not page.locator('[data-testid="stException"]').count()
    week = int(_metric(page, "Requests").replace(",", ""))
    assert week > 500  # the demo's last 7 days
    expect(page.locator('[data-testid="stVegaLiteChart"]').nth(5)).to_be_visible()  # drawn a moment after the run
    _shot(page, "monitoring")

    # Filter: the last 24 hours. The URL keeps it, the numbers follow it.
    page.get_by_role("combobox", name="Time range").click()
    page.get_by_role("option", name="Last 24 hours").click()
    wait_idle(page)
    assert "range=24h" in page.url
    day = int(_metric(page, "Requests").replace(",", ""))
    assert 0 < day < week

    # Only the open breakdown tab is computed: opening another fills it (a rerun of its fragment),
    # and the link names it, beside the filter.
    page.get_by_role("tab", name="By release").click()
    wait_idle(page)
    expect(page.get_by_role("tab", name="By release")).to_have_attribute("aria-selected", "true")
    expect(page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]')).to_have_count(1)
    assert re.search(r"breakdown=By(\+|%20)release", page.url) and "range=24h" in page.url, page.url
    assert not page.locator('[data-testid="stException"]').count()

    # The filter follows to Traces.
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Traces").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Traces", exact=True)).to_be_visible()
    assert "range=24h" in page.url
    caption = page.get_by_text(re.compile(r"Traces 1–\d+ of [\d,]+")).inner_text()
    assert int(re.search(r"of ([\d,]+)", caption).group(1).replace(",", "")) == day

    # Open the first trace: the row marker of the grid's first row (grids are canvases).
    open_first_row(page, lambda: re.search(r"[?&]trace=[0-9a-f]{32}", page.url) is not None)
    expect(page.get_by_role("tab", name="Span tree")).to_be_visible()
    # The span tree lists the trace's spans; the chosen span's content is shown next to it.
    tree = page.locator('[data-testid="stDataFrame"]').filter(has=page.locator("canvas")).last
    expect(tree).to_be_visible()
    expect(page.get_by_text("Input", exact=True).first).to_be_visible()
    expect(page.locator('[data-testid="stChatMessage"]').nth(1)).to_be_visible()  # drawn a moment after the run
    assert not page.locator('[data-testid="stException"]').count()
    _shot(page, "trace")

    # The deep link opens the same trace in a fresh page.
    link = page.url
    page.goto(link)
    wait_idle(page)
    expect(page.get_by_role("tab", name="Span tree")).to_be_visible()
