"""Every page of the app, driven through Streamlit's AppTest on real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PAGES = [
    "app_pages/overview.py",
    "app_pages/monitoring.py",
    "app_pages/traces.py",
    "app_pages/annotate.py",
    "app_pages/datasets.py",
    "app_pages/experiments.py",
    "app_pages/evaluators.py",
    "app_pages/settings.py",
]


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app pointed at an empty database."""
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    yield db_url


def open_page(page: str, **query: str | list[str]) -> AppTest:
    """The app started from its entry point, switched to ``page`` with ``query`` in the URL."""
    at = AppTest.from_file(MAIN, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page != "app_pages/overview.py":
        at.switch_page(page).run()
    return at


def texts(at: AppTest) -> str:
    """Everything a user reads on the page, as one string."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "title", "header", "subheader")
             for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]
    parts += [m.label + " " + str(m.value) for m in at.metric]
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_an_empty_database(app_db: str, page: str) -> None:
    at = open_page(page)
    assert not at.exception, at.exception
    if page in ("app_pages/overview.py", "app_pages/monitoring.py", "app_pages/traces.py"):
        assert "No traces yet" in texts(at)
        assert any("looplab.wrap_openai" in c.value for c in at.code)


def test_a_database_that_cannot_be_opened_gets_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'missing-folder' / 'looplab.db'}")
    at = open_page("app_pages/overview.py")
    assert not at.exception
    assert "cannot open its database" in at.error[0].value
    assert "does not exist" in at.error[0].value
