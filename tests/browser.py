"""A real app in a real browser: `streamlit run` on 127.0.0.1 driven by Playwright and Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_BROWSER = os.environ.get("LOOPLAB_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]


def chromium_path() -> str:
    """Debian's Chromium; skips the test (fails it in CI) when it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if REQUIRE_BROWSER:
            pytest.fail("LOOPLAB_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH")
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(database_url: str) -> Iterator[str]:
    """`streamlit run app/main.py` on a free 127.0.0.1 port, showing ``database_url``; yields its base URL."""
    port = free_port()
    env = {**os.environ, "LOOPLAB_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_health(base: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the Streamlit server at ``base`` answers its health check; raise with its output if it died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"streamlit did not start:\n{output}")
        time.sleep(0.2)


def wait_idle(page, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit finished its script run and shows no stale or loading elements (twice, 150 ms apart)."""
    deadline = time.monotonic() + timeout
    settled = 0
    while settled < 2:
        idle = page.evaluate("""() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
                && app.getAttribute('data-test-connection-state') === 'CONNECTED'
                && !document.querySelector('[data-testid="stSkeleton"]')
                && !document.querySelector('[data-stale="true"]');
        }""")
        settled = settled + 1 if idle else 0
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not become idle")
        page.wait_for_timeout(150)


def open_first_row(page, opened, tries: int = 4) -> None:  # type: ignore[no-untyped-def]
    """Click the row marker of the page's first grid's first row (grids are canvases) until
    ``opened()`` says the row opened. The grid draws its rows a moment after the script run, and a
    click that lands before that does nothing, so the click is repeated (at most ``tries`` times)."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.locator("canvas").first.wait_for(state="visible")
    for _ in range(tries):
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)
        wait_idle(page)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if opened():
                return
            page.wait_for_timeout(100)
    raise AssertionError(f"clicking the first row of the grid opened nothing ({tries} tries); the page is at {page.url}")
