"""A reader follows "Manage your topics" from a digest they received, in a real browser:
topics and cadence, a pause, a new address confirmed from the mail sent to it, and
unsubscribing from everything."""

from __future__ import annotations

import re

from sqlalchemy import select

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Cadence, Subscriber, SubscriberStatus
from tests.factories import add_article, add_subscribers
from tests.helpers import link_from, screenshot, wait_until_sent


def preferences_link(message) -> str:
    """The footer's "Manage your topics" link in the plain-text part."""
    text = message.get_body(("plain",)).get_content()
    [link] = re.findall(r"Manage your topics: (\S+/preferences)\s", text)
    return link


def reader(app, email: str) -> Subscriber:
    with app.app_context():
        found = db.session.scalar(select(Subscriber).where(Subscriber.email_normalized == email))
        assert found is not None
        topic_slugs = [topic.slug for topic in found.topics]
        db.session.expunge(found)
        found.topic_slugs = topic_slugs
        return found


def test_preference_centre_from_a_received_digest(app, live_server, page, mailbox,
                                                  monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")  # daily is offered
    add_subscribers(app, 1)  # reader0@example.com, every topic, weekly
    add_article(app)  # filed under "Europe"
    with app.app_context(), unit_of_work():
        topics.create_topic("europe", "Europe", description="The continent's politics.",
                            categories=["Europe"])
        topics.create_topic("asia", "Asia-Pacific", categories=["Asia-Pacific"])
        with unit_of_work():
            digest_id = digests.send_now().id
        wait_until_sent(app, digest_id)
    [digest] = mailbox.wait_for(1)
    manage = digest.get_body(("html",)).get_content()
    assert "Manage your topics" in manage

    page.goto(preferences_link(digest))
    page.get_by_role("heading", name="Your preferences").wait_for()
    screenshot(page, "preferences")
    page.get_by_label("Asia-Pacific").check()
    page.get_by_label("Daily").check()
    page.get_by_role("button", name="Save my choices").click()
    page.get_by_text("Your choices are saved.").wait_for()
    assert page.get_by_label("Asia-Pacific").is_checked()
    saved = reader(app, "reader0@example.com")
    assert saved.topic_slugs == ["asia"] and saved.cadence == Cadence.DAILY

    page.get_by_label("Pause mail for").select_option("2")
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_text("Mail is paused until").wait_for()
    screenshot(page, "preferences-paused")
    assert reader(app, "reader0@example.com").paused_until is not None
    page.get_by_role("button", name="Resume now").click()
    page.get_by_text("Mail is back on.").wait_for()
    assert reader(app, "reader0@example.com").paused_until is None

    page.get_by_label("New address").fill("new.home@example.org")
    page.get_by_role("button", name="Send a confirmation link").click()
    page.get_by_text("If that address can receive our mail").wait_for()
    screenshot(page, "preferences-address-requested")
    confirmation = mailbox.wait_for(2)[1]
    assert confirmation["To"] == "new.home@example.org"
    assert reader(app, "reader0@example.com").status == SubscriberStatus.ACTIVE  # old one still

    page.goto(link_from(confirmation, "/change-address/"))
    screenshot(page, "change-address")
    page.get_by_role("button", name="Yes, use this address").click()
    page.get_by_role("heading", name="Your address is changed").wait_for()
    moved = reader(app, "new.home@example.org")
    assert moved.topic_slugs == ["asia"] and moved.cadence == Cadence.DAILY

    page.goto(preferences_link(digest))  # the same link: the reader, not the address
    page.get_by_text("new.home@example.org").first.wait_for()
    page.get_by_role("button", name="Unsubscribe from everything").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    screenshot(page, "preferences-unsubscribed")
    assert reader(app, "new.home@example.org").status == SubscriberStatus.UNSUBSCRIBED
