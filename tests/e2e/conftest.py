"""A live web server and Debian's chromium driven by playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from newsletter.devstack import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Keep chromium off the (closed) network and out of first-run flows.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: install Debian's chromium")
        pytest.skip("browser tests need Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app, clean_state, celery_worker):
    """The app over real HTTP on a free port; BASE_URL points mails at it."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    previous = app.config["BASE_URL"]
    app.config["BASE_URL"] = f"http://127.0.0.1:{port}"
    thread.start()
    yield app.config["BASE_URL"]
    server.shutdown()
    app.config["BASE_URL"] = previous


# Every CSP violation in any frame becomes a console error the fixture sees.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""
APP_HOST = "127.0.0.1"  # live_server's host; other hosts in a test are "another site"


class PageWatch:
    """What the browser saw that the CSP checks care about."""

    def __init__(self):
        self.violations: list[str] = []
        self.documents: list[tuple[str, str | None]] = []  # (url, CSP header)

    def on_console(self, message) -> None:
        text = message.text
        if message.type == "error" and ("CSP violation" in text
                                        or "Content Security Policy" in text):
            self.violations.append(text)

    def on_response(self, response) -> None:
        if (response.request.resource_type == "document"
                and urlsplit(response.url).hostname == APP_HOST):
            self.documents.append(
                (response.url, response.headers.get("content-security-policy")))


@pytest.fixture
def page_watch():
    return PageWatch()


@pytest.fixture
def page(page_in):
    """A fresh page; at the end, every app page it loaded (frames too) had a CSP
    header and nothing was blocked by it (a blocked script or style breaks a page)."""
    return page_in()


@pytest.fixture
def page_in(browser, page_watch):
    """Fresh pages in browser contexts of the given options (a locale, a time zone),
    under the same watch as ``page``."""
    contexts = []

    def new_page(**options):
        context = browser.new_context(**options)
        contexts.append(context)
        context.add_init_script(REPORT_VIOLATIONS)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", page_watch.on_console)
        page.on("response", page_watch.on_response)
        return page

    yield new_page
    for context in contexts:
        context.close()
    assert page_watch.documents, "the test loaded no page of the app"
    assert [url for url, policy in page_watch.documents if not policy] == []
    assert page_watch.violations == []
