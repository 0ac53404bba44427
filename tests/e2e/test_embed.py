"""The subscribe form embedded in a cross-site iframe works, and only where allowed.

The app runs on 127.0.0.1; the embedding page is served from "localhost", another
origin and another site: the browser sends the app's SameSite=Lax cookies to
the iframe's requests never, so the form must not need them.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers import screenshot


@pytest.fixture
def other_site(live_server):
    """http://localhost:PORT/ serves a page that frames the app's embed form."""
    page_html = (
        "<!doctype html><title>A publisher's site</title><h1>Our site</h1>"
        f'<iframe id="signup" src="{live_server}/subscribe?embed=1" width="420" height="480">'
        "</iframe>").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *args):
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{port}/"
    server.shutdown()
    server.server_close()


def test_embedded_form_subscribes_from_another_site(app, live_server, other_site, page,
                                                    page_watch, mailbox):
    # Visit the app first, so the browser holds its session cookie: the iframe
    # below still never gets to send it (SameSite=Lax, cross-site).
    page.goto(f"{live_server}/admin/login")
    posted: list[dict] = []
    page.on("request", lambda request: posted.append(request.headers)
            if request.method == "POST" and "/subscribe" in request.url else None)

    page.goto(other_site)
    frame = page.frame_locator("#signup")
    frame.get_by_label("Email address").fill("embedded@example.com")
    frame.get_by_role("button", name="Subscribe").click()
    frame.get_by_role("heading", name="Check your inbox").wait_for()
    screenshot(page, "embed-thanks")
    assert posted and all("cookie" not in headers for headers in posted)

    [confirmation] = mailbox.wait_for(1)
    assert confirmation["To"].addresses[0].addr_spec == "embedded@example.com"
    with app.app_context():
        assert db.session.scalar(select(Subscriber.status).where(
            Subscriber.email_normalized == "embedded@example.com")) == SubscriberStatus.PENDING
    embeds = [policy for url, policy in page_watch.documents if "embed=1" in url]
    assert embeds and all("frame-ancestors *" in policy for policy in embeds)


def test_the_form_refuses_sites_not_in_embed_origins(app, live_server, other_site, page,
                                                     page_watch, monkeypatch):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", ("https://publisher.example",))
    page.goto(other_site)
    page.wait_for_timeout(1000)
    frame = page.frame(url=lambda url: "/subscribe" in url)
    blocked = frame is None or frame.locator("#email").count() == 0
    assert blocked, "the form rendered inside a site EMBED_ORIGINS does not list"
    # The browser refused the frame because of the policy; nothing else was blocked.
    assert page_watch.documents and all(
        "frame-ancestors https://publisher.example" in policy
        for _, policy in page_watch.documents)
    assert any("frame-ancestors" in text for text in page_watch.violations), \
        page_watch.violations
    page_watch.violations.clear()  # that refusal was the point of this test
