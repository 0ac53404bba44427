"""Pages whose behaviour moved out of inline script and style, driven in a browser
under the CSP (the page fixture fails on any violation)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from werkzeug.serving import make_server

from newsletter import create_app
from newsletter.db import unit_of_work
from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Digest, DigestStatus
from tests.factories import add_article, make_editor
from tests.helpers import app_config, log_in, screenshot


def test_cancel_asks_first_and_the_report_renders(app, live_server, page):
    make_editor(app)
    add_article(app)
    with app.app_context():
        with unit_of_work():
            digest = digests.schedule(datetime.now(UTC) + timedelta(days=1), "Later this week")
        digest_id = digest.id
    log_in(page, live_server, f"/admin/digests/{digest_id}")
    page.get_by_role("heading", name="Later this week").wait_for()
    assert page.locator("#bar rect").count() == 4  # the SVG progress bar
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel the rest").click()
    page.wait_for_timeout(300)
    with app.app_context():
        assert db.session.get(Digest, digest_id).status == DigestStatus.SCHEDULED
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel the rest").click()
    page.get_by_text("Issue cancelled").wait_for()
    screenshot(page, "admin-cancelled")
    with app.app_context():
        assert db.session.scalar(select(Digest.status)) == DigestStatus.CANCELLED


def test_dev_mail_shows_a_caught_mail_and_its_html(app, clean_state, database_url, redis_url,
                                                   smtp_server, page, tmp_path):
    (tmp_path / "1700000000-1.eml").write_bytes(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Caught mail\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nPlain words\r\n--b\r\nContent-Type: text/html\r\n\r\n"
        b'<h1 style="color:#1f5eff">Styled heading</h1>'
        b'<a href="/dev/mail/">Confirm</a>\r\n--b--\r\n')
    port = free_port()
    dev = create_app(app_config(database_url, redis_url, smtp_server.port, DEBUG=True,
                                BASE_URL=f"http://127.0.0.1:{port}",
                                DEV_MAILBOX=str(tmp_path)))
    server = make_server("127.0.0.1", port, dev, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{port}/dev/mail/")
        page.get_by_role("link", name="Caught mail").click()
        page.get_by_text("Plain words", exact=True).wait_for()
        heading = page.frame_locator("iframe.mail").get_by_role("heading", name="Styled heading")
        heading.wait_for()
        # The mail's inline style applies inside the sandboxed frame (its own policy).
        assert heading.evaluate("element => getComputedStyle(element).color") == \
            "rgb(31, 94, 255)"
        screenshot(page, "dev-mail")
        # A link (a mail's button) opens in a new tab, where its page's forms work.
        with page.expect_popup() as popup:
            page.frame_locator("iframe.mail").get_by_role("link", name="Confirm").click()
        popup.value.get_by_role("heading", name="Dev mailbox").wait_for()
        assert page.frame_locator("iframe.mail").get_by_role(
            "heading", name="Styled heading").is_visible()  # the frame stayed on the mail
    finally:
        server.shutdown()
