"""Digests through a real worker and SMTP server: exactly once, with the right content."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.mail import verp
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import subscriptions
from newsletter.readers.subscriptions import Origin
from tests.factories import add_article, add_subscribers, send_now
from tests.helpers import SAMPLE, sweep, wait_for_idle_ledger, wait_until, wait_until_sent


def test_sample_article_digest_reaches_300_subscribers_exactly_once(app, client, celery_worker,
                                                                    mailbox):
    result = app.test_cli_runner().invoke(args=["articles", "import", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    add_subscribers(app, 300)
    digest_id = send_now(app)
    counts = wait_until_sent(app, digest_id)
    assert counts["sent"] == 300 and counts["total"] == 300

    messages = mailbox.wait_for(300)
    recipients = [message["To"].addresses[0].addr_spec for message in messages]
    assert len(recipients) == 300 == len(set(recipients))

    message = messages[0]
    with app.app_context():
        subscriber_id = db.session.scalar(select(Subscriber.id).where(
            Subscriber.email == recipients[0]))
    title = "US Secretary of State meets Central Asian foreign ministers, attends C5+1 meeting"
    assert message["Subject"] == f"The Newsletter: {title}"
    with app.app_context():  # names the delivery, shows no id
        assert verp.ref_in_message_id(message["Message-ID"]) == verp.DeliveryRef(
            digest_id=digest_id, subscriber_id=subscriber_id)
    assert f"{digest_id}.{subscriber_id}@" not in message["Message-ID"]
    assert message["List-Id"] == "<newsletter.localhost>"
    assert message["List-Archive"] == f"<http://localhost/archive/{digest_id}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert title in text and "Asia-Pacific" in html and "1 Example Street" in text
    # The article's link is tracked, and takes the reader to the article.
    tracked = re.search(r"http://localhost(/r/\S+)", text).group(1)
    assert client.get(tracked, headers={"User-Agent": "Mozilla/5.0 Firefox/133.0"}).headers[
        "Location"] == "http://localhost/articles/us-secretary-of-state-c5-plus-1"

    # The links in it work: the article, the archive, and one-click unsubscribe.
    article_page = client.get("/articles/us-secretary-of-state-c5-plus-1").get_data(as_text=True)
    assert "Blinken" in article_page and "Related Articles" not in article_page
    for archive_path in [f"/archive/{digest_id}", f"/archive/{digest_id}/mail"]:
        archive = client.get(archive_path)
        assert archive.status_code == 200 and title in archive.get_data(as_text=True)
        assert "/unsubscribe/" not in archive.get_data(as_text=True)
    assert title in client.get("/archive/").get_data(as_text=True)
    unsubscribe_path = message["List-Unsubscribe"].strip("<> ").removeprefix("http://localhost")
    assert client.post(unsubscribe_path,
                       data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id).status == SubscriberStatus.UNSUBSCRIBED

    # Nothing new since: a second send by hand sends nothing.
    with app.app_context(), unit_of_work():
        assert digests.send_now() is None


@pytest.mark.parametrize("reply", ["451 4.7.1 Greylisted, come back later",
                                   "452 4.3.1 Insufficient system storage",
                                   "421 4.3.2 Service shutting down"])
def test_temporary_failure_is_deferred_then_delivered(app, client, celery_worker, mailbox,
                                                       monkeypatch, reply):
    monkeypatch.setitem(app.config, "SEND_RETRY_DELAY", 1)
    monkeypatch.setitem(app.config, "SEND_DOMAIN_BACKOFF", 0)  # tested on its own below
    mailbox.replies = [reply]
    add_subscribers(app, 1)
    add_article(app)
    digest_id = send_now(app)

    def deferred():
        with app.app_context():
            return digests.progress(digest_id)["deferred"] == 1

    wait_until(deferred, timeout=20, what="the reader deferred")
    with app.app_context():
        assert digests.progress(digest_id)["deferred"] == 1
    # Until the retry is due (SEND_RETRY_DELAY, 1 s): the clock moves on, not the test.
    with time_machine.travel(utcnow() + timedelta(seconds=1.2), tick=True):
        with app.app_context():
            # What beat does every 15 seconds: a batch task the deferral handed on may
            # have claimed the now-due row first, so how many it publishes varies.
            sweep()
        wait_until_sent(app, digest_id)
    assert len(mailbox.wait_for(1)) == 1
    with app.app_context():
        delivery = db.session.scalar(select(Delivery))
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
        assert delivery.last_error is None


def test_550_fails_and_marks_the_subscriber_bounced(app, client, celery_worker, mailbox):
    mailbox.rejected_recipients = {"reader1@example.com"}
    add_subscribers(app, 3)
    add_article(app)
    counts = wait_until_sent(app, send_now(app))
    assert (counts["sent"], counts["failed"]) == (2, 1)
    with app.app_context():
        bounced = db.session.scalar(select(Subscriber).where(
            Subscriber.email == "reader1@example.com"))
        assert bounced.status == SubscriberStatus.BOUNCED
        delivery = db.session.scalar(select(Delivery).where(
            Delivery.subscriber_id == bounced.id))
        assert delivery.last_error.startswith("550")
        [event] = bounced.consent_events  # the reader's history says so too
        assert (event.action.value, event.source.value) == ("bounced", "bounce")
        assert event.detail.startswith("refused when sent: 550")


def test_unsubscribe_during_a_send_is_honoured(app, client, celery_worker, mailbox):
    mailbox.delay = 0.05  # 40 messages take about two seconds
    ids = add_subscribers(app, 40)
    add_article(app)
    digest_id = send_now(app)
    mailbox.wait_for(1)  # the send is under way, its batch already claimed
    with app.app_context():
        key = db.session.get(Subscriber, ids[-1]).unsubscribe_key
        with unit_of_work():
            subscriptions.unsubscribe(key, Origin(source="link"))
    counts = wait_until_sent(app, digest_id)
    assert (counts["sent"], counts["skipped"]) == (39, 1)
    addresses = [m["To"].addresses[0].addr_spec for m in mailbox.wait_for(39)]
    assert "reader39@example.com" not in addresses and len(set(addresses)) == 39


def test_a_period_gets_one_issue_however_often_the_trigger_fires(app, client, celery_worker,
                                                                 mailbox):
    add_subscribers(app, 2)
    add_article(app)
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with app.app_context(), unit_of_work():
        with unit_of_work():
            first = digests.run_weekly(monday)
        add_article(app, "Another story", "https://news.example.com/another")
        with unit_of_work():
            again = digests.run_weekly(monday + timedelta(minutes=1))
        assert first is not None and again is None
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 1
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 2
        # The next week carries only what is new since.
        with unit_of_work():
            next_week = digests.run_weekly(monday + timedelta(days=7))
        assert [a.title for a in next_week.articles] == ["Another story"]
        first_id, next_id = first.id, next_week.id
    # Let both sends finish, so no batch of this test is still running in the next one.
    wait_until_sent(app, first_id)
    wait_until_sent(app, next_id)
    assert len(mailbox.wait_for(4)) == 4


def test_send_now_skips_a_paused_reader(app, client):
    """Composed and started in one transaction: the start judges pauses at its own time."""
    paused, reading = add_subscribers(app, 2)
    with app.app_context(), unit_of_work():
        db.session.get(Subscriber, paused).paused_until = utcnow() + timedelta(days=3)
    add_article(app)
    digest_id = send_now(app)
    with app.app_context():
        rows = dict(db.session.execute(select(Delivery.subscriber_id, Delivery.status)
                                       .where(Delivery.digest_id == digest_id)).all())
    assert rows == {paused: DeliveryStatus.SKIPPED, reading: DeliveryStatus.PENDING}


def test_nothing_new_means_no_issue(app, client):
    add_subscribers(app, 1)
    with app.app_context(), unit_of_work():
        assert digests.send_now() is None
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0


def test_pause_resume_and_cancel(app, client, celery_worker, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "SEND_BATCH_SIZE", 5)
    mailbox.delay = 0.03
    add_subscribers(app, 40)
    add_article(app)
    digest_id = send_now(app)
    mailbox.wait_for(1)  # under way
    with app.app_context(), unit_of_work():
        assert digests.pause(digest_id)
    paused = wait_for_idle_ledger(app, digest_id)
    assert 0 < paused["pending"] < 40
    # No event tells that nothing happens: a paused send is watched for a moment.
    time.sleep(0.5)
    with app.app_context(), unit_of_work():
        assert digests.progress(digest_id)["sent"] == paused["sent"]  # nothing moves
        assert db.session.get(Digest, digest_id).status == DigestStatus.PAUSED
        assert digests.resume(digest_id)
        assert digests.pause(digest_id)
    wait_for_idle_ledger(app, digest_id)
    with app.app_context(), unit_of_work():
        assert digests.cancel(digest_id)
    # Rows a batch claimed just before the cancel are skipped when that batch stops.
    counts = wait_for_idle_ledger(app, digest_id)
    with app.app_context(), unit_of_work():
        assert db.session.get(Digest, digest_id).status == DigestStatus.CANCELLED
        assert counts["remaining"] == 0 and counts["skipped"] > 0
        assert not digests.resume(digest_id)
    assert counts["sent"] + counts["skipped"] == 40
    received = [m["To"].addresses[0].addr_spec for m in mailbox.messages]
    assert len(received) == len(set(received)) == counts["sent"]
