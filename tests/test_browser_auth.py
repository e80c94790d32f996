"""Sign-in in a real browser: an annotator who types another page's URL still sees only Annotate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from looplab.annotation.users import add_user
from tests.browser import CHROMIUM_ARGS, chromium_path, running_app, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_with_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    db = f"sqlite:///{Path(tmp_path_factory.mktemp('auth')) / 'looplab.db'}"
    add_user(db, "ada", "adaada-pw", "admin")
    add_user(db, "ann", "annann-pw", "annotator", display_name="Ann")
    with running_app(db) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield base, browser
        browser.close()


def close_page_not_found(page) -> None:  # type: ignore[no-untyped-def]
    """Streamlit answers a URL outside the navigation with a "Page not found" dialog over the main page."""
    dialog = page.get_by_role("dialog")
    if dialog.count():
        assert "Page not found" in dialog.inner_text()
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")


def sign_in(page, base: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base)
    wait_idle(page)
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    wait_idle(page)


def test_an_annotator_cannot_open_other_pages_by_url(app_with_users) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, browser = app_with_users
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/settings")
    wait_idle(page)
    expect(page.get_by_role("heading", name="Sign in to looplab", exact=True)).to_be_visible()
    assert not page.get_by_role("heading", name="Settings", exact=True).count()
    close_page_not_found(page)

    page.get_by_role("textbox", name="Username", exact=True).fill("ann")
    page.get_by_role("textbox", name="Password", exact=True).fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    wait_idle(page)
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()

    sign_in(page, base, "ann", "annann-pw")
    expect(page.get_by_role("heading", name="Annotate", exact=True)).to_be_visible()
    for path in ("settings", "traces", "monitoring", "score-configs"):
        # Going to another URL within the signed-in session (a reload would start a new session).
        page.evaluate(f"window.history.pushState({{}}, '', '/{path}'); window.dispatchEvent(new PopStateEvent('popstate'))")
        wait_idle(page)
        close_page_not_found(page)
        expect(page.get_by_role("heading", name="Annotate", exact=True)).to_be_visible()
        assert not page.get_by_role("heading", name="Settings", exact=True).count()
        assert not page.get_by_role("heading", name="Traces", exact=True).count()
        assert not page.get_by_role("heading", name="Monitoring", exact=True).count()
        assert not page.get_by_role("heading", name="Score configs", exact=True).count()
    assert not page.locator('[data-testid="stException"]').count()
    nav = page.locator('[data-testid="stSidebarNavLink"]')
    assert nav.count() <= 1  # a single page: Streamlit may hide the navigation altogether
    page.close()


def test_an_admin_sees_every_page_and_signs_out(app_with_users) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, browser = app_with_users
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "ada", "adaada-pw")
    links = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    for name in ("Overview", "Traces", "Score configs", "Settings"):
        assert any(text.strip().endswith(name) for text in links), links
    page.get_by_role("button", name="Sign out").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Sign in to looplab", exact=True)).to_be_visible()
    page.close()
