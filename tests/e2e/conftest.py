"""Browser fixtures: Python playwright driving Debian's chromium against pytest-django's live_server.

The browser tests skip, loudly, when playwright or /usr/bin/chromium is missing (`make browser` installs
chromium). A failed test leaves screenshots of every open page under its tmp_path.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CITABLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def browser_missing_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'playwright>=1.45,<2'); BROWSER TESTS SKIPPED"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return (
            f"chromium not found at {CHROMIUM} (apt-get install -y chromium / make browser); "
            "BROWSER TESTS SKIPPED"
        )
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # Kept on the item so the screenshot fixture knows, at teardown, whether the test body failed.
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    reason = browser_missing_reason()
    if reason:
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django then refuses ORM calls from it
    # unless told the thread is really synchronous (it is: the loop only runs inside playwright calls).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(browser, request, tmp_path):
    """A fresh context (cookies, storage) per test; screenshots of its pages if the test failed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call")
    )
    if failed:
        for index, page in enumerate(context.pages):
            path = tmp_path / f"failure-{request.node.name}-{index}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot saved: {path}")
            except Exception as exc:  # noqa: BLE001 - a screenshot must never hide the real failure
                print(f"screenshot failed: {exc}")
    context.close()


@pytest.fixture
def page(browser_context):
    return browser_context.new_page()
