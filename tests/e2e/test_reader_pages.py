"""Reader pages in a browser: an archive issue on a phone without a scrolling frame,
topic descriptions on the subscribe form, and bad links that offer the next step that
fits them (a new confirmation; the reader's own links by mail)."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.mail.tokens import make_address_token
from newsletter.models import Subscriber, SubscriberStatus
from tests.factories import add_article, add_subscribers, send_now
from tests.helpers import screenshot, wait_until_sent


def test_an_archive_issue_reads_inline_on_a_phone(app, live_server, page, mailbox):
    add_subscribers(app, 1)
    add_article(app, title="Talks resume in Geneva after a long " + "x" * 120 + " pause")
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server}/archive/{digest_id}")
    body = page.locator(".issue-body")
    body.get_by_role("link", name="Talks resume in Geneva").first.wait_for()
    assert page.locator("iframe").count() == 0
    assert body.evaluate("e => e.scrollHeight <= e.clientHeight")  # no box scrolling inside
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, "
                                   "document.documentElement.clientWidth]")
    assert scroll <= client, f"{scroll} px wide at 375"
    screenshot(page, "archive-issue-inline-375")


def test_the_subscribe_form_shows_each_topics_description(app, live_server, page):
    with app.app_context(), unit_of_work():
        topics.create_topic("europe", "Europe", description="Brussels and beyond, weekly.")
        topics.create_topic("asia", "Asia")
    page.goto(f"{live_server}/subscribe")
    europe = page.get_by_label("Europe")
    assert "Brussels and beyond, weekly." in page.locator("label.choice", has=europe).inner_text()
    page.get_by_label("Asia").wait_for()
    screenshot(page, "subscribe-topic-descriptions")


def test_each_bad_link_offers_the_step_that_fits_it(app, live_server, page, mailbox):
    [reader_id] = add_subscribers(app, 1)
    with app.app_context(), unit_of_work():
        reader = db.session.get(Subscriber, reader_id)
        reader.pending_email = "new@example.com"
        token = make_address_token(reader.id, reader.token_nonce, "new@example.com")
        key = reader.unsubscribe_key
    # A change-address link, followed, then opened again.
    page.goto(f"{live_server}/change-address/{token}")
    page.get_by_role("button", name="Yes, use this address").click()
    page.goto(f"{live_server}/change-address/{token}")
    page.get_by_role("heading", name="This link has already been used").wait_for()
    page.get_by_text("Your address change went through with it already").wait_for()
    assert page.get_by_role("button", name="Subscribe", exact=True).count() == 0
    screenshot(page, "bad-link-used-change-address")
    page.get_by_label("Email address").fill("new@example.com")
    page.get_by_role("button", name="Send me an unsubscribe link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()

    # A preferences link cut short.
    page.goto(f"{live_server}/unsubscribe/{key[:-3]}/preferences")
    page.get_by_role("heading", name="This link is not valid").wait_for()
    page.get_by_text("To manage your subscription, copy the whole link").wait_for()
    page.get_by_role("button", name="Send me an unsubscribe link").wait_for()
    assert page.get_by_role("button", name="Subscribe", exact=True).count() == 0

    # A confirmation link cut short: a new one, and for readers already in, their link.
    page.goto(f"{live_server}/confirm/not-a-real-token")
    page.get_by_text("Enter your address to get a new confirmation link.").wait_for()
    page.get_by_role("button", name="Subscribe", exact=True).wait_for()
    page.get_by_role("link", name="Get your link to manage or unsubscribe by mail").click()
    page.get_by_role("heading", name="Unsubscribe by mail").wait_for()
    with app.app_context():
        assert db.session.scalar(select(Subscriber.status).where(
            Subscriber.email == "new@example.com")) == SubscriberStatus.ACTIVE
