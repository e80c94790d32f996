"""Labeling in a real browser: an annotator signs in, labels three items with the keyboard and
adds one to a dataset; an engineer then finds that item on the Datasets page.

Set ``LOOPLAB_SCREENSHOTS=DIR`` to keep screenshots (the README's labeling view comes from here).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from looplab.annotation import queues
from looplab.annotation.users import add_user
from looplab.datasets.items import items_at
from looplab.demo import seed
from looplab.store.engine import read_session
from looplab.store.models import Annotation, Score, Trace
from tests.browser import CHROMIUM_ARGS, chromium_path, open_first_row, running_app, wait_idle

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("LOOPLAB_SCREENSHOTS")
PASSWORDS = {"ana": "labels all day long", "eve": "engineers ship safely"}


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def _sign_in(page, username: str) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Sign in to looplab")).to_be_visible()
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORDS[username])
    page.get_by_role("button", name="Sign in").click()
    wait_idle(page)


def _press(page, key: str) -> None:  # type: ignore[no-untyped-def]
    # Shortcuts act when no text box has the focus, as for a person who clicked outside one.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)
    page.wait_for_timeout(300)  # the rerun a shortcut starts may not have begun yet
    wait_idle(page)


def _done_count(page) -> int:  # type: ignore[no-untyped-def]
    text = page.get_by_text(re.compile(r"\d+ of \d+ items done")).first.inner_text()
    return int(re.search(r"(\d+) of \d+ items done", text).group(1))


def test_an_annotator_labels_with_the_keyboard_and_an_engineer_sees_the_dataset_item(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = chromium_path()
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    seed(url)
    for username, role in (("ana", "annotator"), ("eve", "engineer")):
        add_user(url, username, PASSWORDS[username], role)
    with read_session(url) as session:
        picked = list(session.scalars(select(Trace.id).where(Trace.name == "support-chat")
                                      .order_by(Trace.start_time.desc()).limit(5)))
    queue = queues.create_queue(url, "Weekly review", score_configs=["correctness", "helpfulness"],
                                instructions="Check every fact against the help-center articles.", assignees=["ana"])
    queues.add_traces(url, queue.id, picked, reason="sampled for review")

    with running_app(url) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        page.goto(base)
        wait_idle(page)
        _sign_in(page, "ana")
        # An annotator gets Annotate and nothing else.
        expect(page.get_by_role("heading", name="Annotate", exact=True)).to_be_visible()
        assert page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Traces").count() == 0
        # Ana sees only the queue assigned to her (the demo's own queues have no assignees).
        page.locator(f".st-key-ann_open_{queue.id}").get_by_role("button", name="Label").click()
        wait_idle(page)
        expect(page.get_by_role("heading", name="Weekly review")).to_be_visible()
        expect(page.locator('[data-testid="stChatMessage"]').nth(1)).to_be_visible()  # drawn a moment after the run
        assert not page.locator('[data-testid="stException"]').count()
        _shot(page, "labeling")

        for number in range(3):
            assert _done_count(page) == number
            _press(page, "1")  # the first option of the first score: correct
            if number == 0:
                _press(page, "d")  # add this one to the dataset chosen (the sample's golden set)
                expect(page.get_by_text("Added to dataset")).to_be_visible()
            _press(page, "Control+Enter")
            expect(page.get_by_text(f"{number + 1} of 5 items done", exact=False)).to_be_visible()
        assert _done_count(page) == 3
        assert not page.locator('[data-testid="stException"]').count()

        with read_session(url) as session:
            labels = session.scalars(select(Annotation.id).where(Annotation.author == "ana")).all()
            scores = session.scalars(select(Score.label).where(Score.author == "ana", Score.name == "correctness")).all()
        assert len(labels) == 3 and scores == ["correct"] * 3
        added = [i for i in items_at(url, "support-golden", limit=200).items if i.source_trace_id in picked]
        assert len(added) == 1

        page.get_by_role("button", name="Sign out").click()
        wait_idle(page)
        _sign_in(page, "eve")
        page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Datasets").click()
        wait_idle(page)
        expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
        # Open the only dataset: the row marker of the grid's first row (grids are canvases; a link
        # would reload the page, a new session that the session cookie keeps signed in).
        open_first_row(page, lambda: page.get_by_role("heading", name="support-golden").count() > 0)
        page.get_by_role("textbox", name="Search inputs, expected outputs and metadata").fill(added[0].source_trace_id)
        page.keyboard.press("Enter")
        wait_idle(page)
        expect(page.get_by_text("Items 1–1 of 1")).to_be_visible()
        assert not page.locator('[data-testid="stException"]').count()
        browser.close()
