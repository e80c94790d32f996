"""Experiments in a real browser: launch a candidate over the demo's golden dataset against its
promoted baseline, watch it finish, compare, decide.

Set ``LOOPLAB_SCREENSHOTS=DIR`` to keep screenshots (the README's comparison comes from here).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from looplab.demo import BASELINE_TEMPLATE, seed
from looplab.experiments.gate import list_decisions
from looplab.experiments.records import get_experiment, list_experiments
from tests.browser import CHROMIUM_ARGS, chromium_path, open_first_row, running_app, wait_idle

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("LOOPLAB_SCREENSHOTS")
TEMPLATE = BASELINE_TEMPLATE


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def test_launch_compare_and_decide(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = chromium_path()
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert seed(url).baseline_added == "support v1"  # the demo's promoted baseline, scored by two evaluators
    baseline = get_experiment(url, "support v1").id

    with running_app(url) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1800})
        page.goto(f"{base}/experiments")
        wait_idle(page)
        expect(page.get_by_role("heading", name="Experiments", exact=True)).to_be_visible()
        page.get_by_text("New experiment").click()
        wait_idle(page)
        page.get_by_text("A new prompt variant", exact=True).click()
        wait_idle(page)
        page.get_by_role("textbox", name="Variant name", exact=True).fill("support-answer")
        page.get_by_role("textbox", name="User template (Jinja2)", exact=True).fill(TEMPLATE)
        page.get_by_role("textbox", name="Params (JSON or YAML)", exact=True).fill("quality: 0.5")
        page.get_by_role("textbox", name="Experiment name", exact=True).fill("support v2")
        page.keyboard.press("Tab")
        wait_idle(page)
        evaluators = page.get_by_role("combobox", name=re.compile("Evaluators"))
        for name in ("exact reply", "similar reply"):
            evaluators.click()
            page.get_by_role("option", name=name).click()
            wait_idle(page)
        page.keyboard.press("Escape")
        # One variable changed against the promoted baseline: its params.
        expect(page.get_by_text("Against support v1")).to_be_visible()
        page.get_by_role("button", name="Launch").click()
        wait_idle(page)
        expect(page.get_by_text("Launched support v2 in a worker process")).to_be_visible()

        deadline = time.monotonic() + 120
        while get_experiment(url, "support v2").status != "completed":
            assert time.monotonic() < deadline, "the worker did not finish"
            time.sleep(0.5)
        candidate = get_experiment(url, "support v2")
        assert candidate.baseline_id == baseline

        # Open it from the list: the first row (newest first) of the experiments grid.
        page.reload()
        wait_idle(page)
        assert [e.name for e in list_experiments(url)][0] == "support v2"
        open_first_row(page, lambda: page.get_by_role("heading", name="support v2").count() > 0)
        expect(page.locator('[data-testid="stVegaLiteChart"]').nth(0)).to_be_visible()  # drawn a moment after the run
        assert not page.locator('[data-testid="stException"]').count()
        _shot(page, "comparison")

        page.get_by_role("button", name="Decide").click()
        wait_idle(page)
        expect(page.get_by_text(re.compile("DON'T SHIP")).first).to_be_visible()
        assert not page.locator('[data-testid="stException"]').count()
        (decision,) = list_decisions(url, candidate.id)
        assert decision.outcome == "dont_ship" and decision.baseline_id == baseline
        browser.close()

