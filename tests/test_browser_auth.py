"""Sign-in in a real browser: an annotator who types another page's URL still sees only Annotate, and
a password sign-in survives reloads and links (the session cookie) until signing out."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from looplab.annotation.users import add_user
from looplab.store.ingest import insert_traces
from tests.browser import CHROMIUM_ARGS, chromium_path, running_app, wait_idle

pytestmark = pytest.mark.browser

TRACE_ID = "5e55" * 8


@pytest.fixture(scope="module")
def app_with_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object, Path]]:
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    folder = Path(tmp_path_factory.mktemp("auth"))
    db = f"sqlite:///{folder / 'looplab.db'}"
    add_user(db, "ada", "adaada-pw", "admin")
    add_user(db, "ann", "annann-pw", "annotator", display_name="Ann")
    now = datetime.now(timezone.utc)
    insert_traces(db, [{"trace_id": TRACE_ID, "name": "refund-chat", "start_time": now.isoformat(),
                        "end_time": (now + timedelta(seconds=1)).isoformat(), "spans": []}])
    with running_app(db) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield base, browser, folder
        browser.close()


def session_cookies(page, *, wanted: int, timeout: float = 10.0) -> list[dict]:  # type: ignore[no-untyped-def]
    """The browser's looplab session cookies once there are ``wanted`` of them: the app sets and clears
    the cookie from a script in a component frame, which runs a moment after the script run ends."""
    deadline = time.monotonic() + timeout
    while True:
        found = [c for c in page.context.cookies() if c["name"] == "looplab_session"]
        if len(found) == wanted or time.monotonic() > deadline:
            return found
        page.wait_for_timeout(100)


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

    base, browser, _ = app_with_users
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

    base, browser, _ = app_with_users
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "ada", "adaada-pw")
    links = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    for name in ("Overview", "Traces", "Score configs", "Settings"):
        assert any(text.strip().endswith(name) for text in links), links
    page.get_by_role("button", name="Sign out").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Sign in to looplab", exact=True)).to_be_visible()
    page.close()


def test_a_password_sign_in_survives_links_and_reloads_until_sign_out(app_with_users) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    base, browser, folder = app_with_users
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # its own context: no cookies yet
    link = f"{base}/traces?trace={TRACE_ID}"
    trace_heading = page.get_by_role("heading", name="refund-chat", exact=True)
    sign_in_heading = page.get_by_role("heading", name="Sign in to looplab", exact=True)

    # A shared deep link asks to sign in, keeping its URL, then opens what it named.
    page.goto(link)
    wait_idle(page)
    expect(sign_in_heading).to_be_visible()
    assert page.url == link and not page.get_by_role("dialog").count()  # no "Page not found"
    page.get_by_role("textbox", name="Username", exact=True).fill("ada")
    page.get_by_role("textbox", name="Password", exact=True).fill("adaada-pw")
    page.get_by_role("button", name="Sign in").click()
    wait_idle(page)
    expect(trace_heading).to_be_visible()
    assert page.url.startswith(link)

    (cookie,) = session_cookies(page, wanted=1)
    assert (cookie["domain"], cookie["path"], cookie["sameSite"]) == ("127.0.0.1", "/", "Strict")
    assert 11.9 * 3600 < cookie["expires"] - time.time() <= 12 * 3600
    secret = folder / "looplab.db.secret"  # generated on first use, readable by its owner only
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    # Every full page load is a new Streamlit session: a reload, a link the app renders, a shared link.
    page.reload()
    wait_idle(page)
    expect(trace_heading).to_be_visible()
    page.goto(f"{base}/datasets")
    wait_idle(page)
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    page.goto(link)
    wait_idle(page)
    expect(trace_heading).to_be_visible()
    expect(page.get_by_text("Signed in as ada · admin")).to_be_visible()

    # Signing out forgets the browser too: a reload asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    wait_idle(page)
    expect(sign_in_heading).to_be_visible()
    assert not session_cookies(page, wanted=0)
    page.reload()
    wait_idle(page)
    expect(sign_in_heading).to_be_visible()
    assert not trace_heading.count()
    assert not page.locator('[data-testid="stException"]').count()
    page.close()
