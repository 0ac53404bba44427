"""A reader subscribes, confirms and unsubscribes in a real browser."""

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers import link_from, screenshot, status_of


def test_subscribe_confirm_unsubscribe_in_a_browser(app, live_server, page, mailbox):
    page.goto(f"{live_server}/subscribe")
    screenshot(page, "subscribe")
    page.get_by_label("Email address").fill("reader@example.com")
    page.get_by_label("Name").fill("Rea Der")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    screenshot(page, "subscribe-thanks")

    [confirmation] = mailbox.wait_for(1)
    page.goto(link_from(confirmation, "/confirm/"))
    screenshot(page, "confirm")
    assert status_of(app, "reader@example.com") == SubscriberStatus.PENDING
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_role("heading", name="You are subscribed").wait_for()
    screenshot(page, "confirmed")
    assert status_of(app, "reader@example.com") == SubscriberStatus.ACTIVE

    welcome = mailbox.wait_for(2)[1]
    page.goto(link_from(welcome, "/unsubscribe/"))
    screenshot(page, "unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    screenshot(page, "unsubscribed")
    assert status_of(app, "reader@example.com") == SubscriberStatus.UNSUBSCRIBED


def test_subscribe_with_topics_and_daily_cadence_in_a_browser(app, live_server, page, mailbox,
                                                               monkeypatch):
    from newsletter.content import topics
    from newsletter.db import unit_of_work
    from newsletter.models import Cadence

    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])
    page.goto(f"{live_server}/subscribe")
    page.get_by_label("Email address").fill("picky@example.com")
    page.get_by_label("United States").check()
    page.get_by_label("Daily").check()
    screenshot(page, "subscribe-topics")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(link_from(mailbox.wait_for(1)[0], "/confirm/"))
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_role("heading", name="You are subscribed").wait_for()
    with app.app_context():
        reader = db.session.scalar(select(Subscriber).where(
            Subscriber.email_normalized == "picky@example.com"))
        assert [topic.slug for topic in reader.topics] == ["us"]
        assert reader.cadence is Cadence.DAILY and reader.status == SubscriberStatus.ACTIVE
