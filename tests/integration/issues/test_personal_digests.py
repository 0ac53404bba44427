"""Personal digests across two weeks, through a real worker and SMTP server.

Readers with different topics and cadences; the daily and weekly triggers are
called with explicit moments. Every mail received is parsed: each reader gets
exactly the articles of their topics, never one twice, nothing when there is
nothing new (the ledger says why), nothing while paused, and a reader who moves
from daily to weekly gets no repeats.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import copies, digests
from newsletter.models import (
    ArticleSource,
    Cadence,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestVariant,
    Subscriber,
    SubscriberStatus,
)
from tests.helpers import wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

# Readers: (topics, cadence). "switcher" reads daily until Thursday, then weekly.
READERS = {
    "everything": ((), Cadence.WEEKLY),
    "asia-weekly": (("asia",), Cadence.WEEKLY),
    "europe-weekly": (("europe",), Cadence.WEEKLY),
    "us-daily": (("us",), Cadence.DAILY),
    "asia-europe-daily": (("asia", "europe"), Cadence.DAILY),
    "paused-daily": (("us",), Cadence.DAILY),
    "switcher": (("asia",), Cadence.DAILY),
}
WED = datetime(2026, 12, 9, 7, 0, tzinfo=UTC)  # the daily schedule is 07:00 UTC
MONDAY = datetime(2026, 12, 14, 8, 0, tzinfo=UTC)  # the weekly one Monday 08:00 UTC


def publish(title: str, categories: list[str], at: datetime) -> None:
    with unit_of_work():
        articles.add_article(ArticleInput(title=title, url=f"https://news.example.com/{title}",
                                          summary=f"About {title}.", categories=categories,
                                          published_at=at - timedelta(hours=1)),
                             ArticleSource.API)


class Inboxes:
    """What each reader has received so far, by article title, from the parsed mails."""

    TITLES = ("tokyo-summit", "us-budget", "berlin-vote", "us-storm", "seoul-talks")

    def __init__(self, mailbox):
        self.mailbox, self.read = mailbox, 0
        self.got: dict[str, list[str]] = {name: [] for name in READERS}
        self.subjects: dict[str, list[str]] = {name: [] for name in READERS}
        self.text: dict[str, str] = {}

    def collect(self) -> dict[str, list[str]]:
        """The articles each reader got since the last call."""
        new: dict[str, list[str]] = {}
        for message in self.mailbox.messages[self.read:]:
            reader = message["To"].addresses[0].username
            body = message.get_body(("plain",)).get_content()
            titles = [title for title in self.TITLES if f"https://news.example.com/{title}" in body]
            new[reader] = titles
            self.got[reader] += titles
            self.subjects[reader].append(str(message["Subject"]))
            self.text[reader] = body
        self.read = len(self.mailbox.messages)
        return new


def run(app, trigger, now: datetime) -> Digest | None:
    with app.app_context():
        with unit_of_work():
            digest = trigger(now)
        digest_id = digest.id if digest else None
    if digest_id is not None:
        wait_until_sent(app, digest_id)
    return digest_id


def skipped(app, digest_id: int) -> dict[str, str]:
    with app.app_context():
        return {email.split("@")[0]: why for email, why in db.session.execute(
            select(Subscriber.email, Delivery.last_error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.digest_id == digest_id,
                   Delivery.status == DeliveryStatus.SKIPPED))}


def test_two_weeks_of_personal_digests(app, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    monkeypatch.setitem(app.config, "DIGEST_SCHEDULE", "mon 08:00 UTC")
    # Untracked links: each reader's articles are told apart by their URLs in the mail.
    monkeypatch.setitem(app.config, "TRACK_CLICKS", False)
    with app.app_context():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])
        topics.create_topic("europe", "Europe", categories=["Europe"])
        for name, (slugs, cadence) in READERS.items():
            reader = Subscriber(email=f"{name}@example.com", email_normalized=f"{name}@example.com",
                                status=SubscriberStatus.ACTIVE, cadence=cadence)
            if name == "paused-daily":
                reader.paused_until = WED + timedelta(days=2)  # Friday 07:00: back on Friday
            db.session.add(reader)
            db.session.flush()
            topics.set_reader_topics(reader, topics.topics_by_slugs(slugs))
        db.session.commit()
    inbox = Inboxes(mailbox)
    daily, weekly = digests.run_daily, digests.run_weekly

    # Wednesday: an article in Asia and the US, one in the US only.
    with app.app_context():
        publish("tokyo-summit", ["Asia-Pacific", "US"], WED)
        publish("us-budget", ["US"], WED)
    wednesday = run(app, daily, WED)
    assert run(app, daily, WED + timedelta(hours=3)) is None  # one daily issue per day
    assert inbox.collect() == {"us-daily": ["tokyo-summit", "us-budget"],
                               "asia-europe-daily": ["tokyo-summit"],
                               "switcher": ["tokyo-summit"]}
    assert skipped(app, wednesday) == {"paused-daily": "skipped: paused until 2026-12-11"}
    assert inbox.subjects["us-daily"] == ["The Newsletter: tokyo-summit and 1 more"]

    # Thursday: Europe only. Readers of other topics get nothing, and the ledger says why.
    with app.app_context():
        publish("berlin-vote", ["Europe"], WED + timedelta(days=1))
    thursday = run(app, daily, WED + timedelta(days=1))
    assert inbox.collect() == {"asia-europe-daily": ["berlin-vote"]}
    assert skipped(app, thursday) == {"us-daily": copies.NOTHING_NEW,
                                      "switcher": copies.NOTHING_NEW,
                                      "paused-daily": "skipped: paused until 2026-12-11"}
    with app.app_context():  # the switcher moves to the weekly digest
        switcher = db.session.scalar(select(Subscriber).where(
            Subscriber.email == "switcher@example.com"))
        topics.set_cadence(switcher, Cadence.WEEKLY)
        db.session.commit()

    # Friday: the pause is over; the paused reader gets Friday's news, not Wednesday's.
    with app.app_context():
        publish("us-storm", ["US"], WED + timedelta(days=2))
    run(app, daily, WED + timedelta(days=2))
    assert inbox.collect() == {"us-daily": ["us-storm"], "paused-daily": ["us-storm"]}

    # Monday: the weekly issue covers the week; the switcher had Tokyo already.
    first_week = run(app, weekly, MONDAY)
    assert inbox.collect() == {
        "everything": ["tokyo-summit", "us-budget", "berlin-vote", "us-storm"],
        "asia-weekly": ["tokyo-summit"], "europe-weekly": ["berlin-vote"]}
    assert skipped(app, first_week) == {"switcher": copies.NOTHING_NEW}
    assert inbox.subjects["europe-weekly"] == ["The Newsletter: berlin-vote"]  # their own top
    assert "== Europe ==" in inbox.text["europe-weekly"]  # sections follow the topics
    assert "== Asia-Pacific ==" in inbox.text["everything"]  # no choice: as before
    with app.app_context():  # rendered once per distinct copy, not per reader
        assert db.session.query(DigestVariant).filter_by(digest_id=first_week).count() == 3
        # The report's split by topic set.
        assert copies.delivered_by_topic_set(first_week) == [
            ([], {"sent": 1}), (["Asia"], {"sent": 1}), (["Europe"], {"sent": 1})]
        # A preview "as a reader of US and Europe", saved nowhere.
        us_europe = [topics.get_topic("us").id, topics.get_topic("europe").id]
        preview = copies.preview_copy(db.session.get(Digest, first_week), us_europe)
        assert preview.subject == "The Newsletter: tokyo-summit and 3 more"
        assert db.session.query(DigestVariant).filter_by(digest_id=first_week).count() == 3

    # Week two: Seoul (Asia) on Tuesday; the switcher now gets it weekly.
    with app.app_context():
        publish("seoul-talks", ["Asia-Pacific"], MONDAY + timedelta(days=1))
    run(app, daily, MONDAY + timedelta(days=1, hours=-1))
    assert inbox.collect() == {"asia-europe-daily": ["seoul-talks"]}
    second_week = run(app, weekly, MONDAY + timedelta(days=7))
    assert inbox.collect() == {"everything": ["seoul-talks"], "asia-weekly": ["seoul-talks"],
                               "switcher": ["seoul-talks"]}
    assert skipped(app, second_week) == {"europe-weekly": copies.NOTHING_NEW}
    assert "== Asia ==" in inbox.text["switcher"]

    # Over the two weeks: exactly the articles of each reader's topics, never twice.
    assert inbox.got == {
        "everything": ["tokyo-summit", "us-budget", "berlin-vote", "us-storm", "seoul-talks"],
        "asia-weekly": ["tokyo-summit", "seoul-talks"],
        "europe-weekly": ["berlin-vote"],
        "us-daily": ["tokyo-summit", "us-budget", "us-storm"],
        "asia-europe-daily": ["tokyo-summit", "berlin-vote", "seoul-talks"],
        "paused-daily": ["us-storm"],
        "switcher": ["tokyo-summit", "seoul-talks"],
    }


def test_an_issue_sent_by_hand_reaches_every_reader_once_by_their_topics(app, mailbox,
                                                                          monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        for name, slugs, cadence in (("all", (), Cadence.WEEKLY),
                                     ("asia-daily", ("asia",), Cadence.DAILY),
                                     ("asia-weekly", ("asia",), Cadence.WEEKLY)):
            reader = Subscriber(email=f"{name}@example.com", email_normalized=f"{name}@example.com",
                                status=SubscriberStatus.ACTIVE, cadence=cadence)
            db.session.add(reader)
            db.session.flush()
            topics.set_reader_topics(reader, topics.topics_by_slugs(slugs))
        db.session.commit()
        publish("tokyo-summit", ["Asia-Pacific"], WED)
        publish("us-budget", ["US"], WED)
        digest = digests.send_now(subject="Special edition")
        digest_id = digest.id
    wait_until_sent(app, digest_id)
    received = {message["To"].addresses[0].username: (
        str(message["Subject"]), "us-budget" in message.get_body(("plain",)).get_content())
        for message in mailbox.messages}
    # Whatever their cadence, by their topics; an editor's subject goes on every copy.
    assert received == {"all": ("Special edition", True),
                        "asia-daily": ("Special edition", False),
                        "asia-weekly": ("Special edition", False)}
    # The daily and weekly issues after it carry nothing those readers had.
    assert run(app, digests.run_daily, WED + timedelta(days=1)) is None
    assert run(app, digests.run_weekly, MONDAY) is None


def test_the_ledger_is_written_in_chunks_and_copies_are_shared_across_them(app, monkeypatch):
    monkeypatch.setattr(copies, "LEDGER_CHUNK", 2)
    with app.app_context(), unit_of_work():
        asia = topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        us = topics.create_topic("us", "United States", categories=["US"])
        choices = [[asia], [], [asia], [us], [asia, us], [asia], [us]]  # 7 readers, 4 chunks
        for n, chosen in enumerate(choices):
            reader = Subscriber(email=f"r{n}@example.com", email_normalized=f"r{n}@example.com",
                                status=SubscriberStatus.ACTIVE)
            db.session.add(reader)
            db.session.flush()
            topics.set_reader_topics(reader, chosen)
        db.session.commit()
        publish("tokyo-summit", ["Asia-Pacific"], WED)
        digest_id = digests.send_now().id
        db.session.expire_all()
        rows = db.session.execute(
            select(Subscriber.email, DigestVariant.topic_ids, DigestVariant.article_ids,
                   Delivery.status)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .outerjoin(DigestVariant, DigestVariant.id == Delivery.variant_id)
            .where(Delivery.digest_id == digest_id).order_by(Subscriber.id)).all()
        tokyo = db.session.get(Digest, digest_id).articles[0].id
        # (The worker may have started on the others: skipped or not is what is fixed.)
        assert [(email, topic_ids, status is DeliveryStatus.SKIPPED)
                for email, topic_ids, _, status in rows] == [
            ("r0@example.com", [asia.id], False),
            ("r1@example.com", [], False),
            ("r2@example.com", [asia.id], False),
            ("r3@example.com", None, True),  # US only: nothing for them
            ("r4@example.com", [asia.id, us.id], False),
            ("r5@example.com", [asia.id], False),
            ("r6@example.com", None, True),
        ]
        assert {tuple(article_ids) for _, _, article_ids, _ in rows if article_ids} == {(tokyo,)}
        # One copy per distinct topic set, however the chunks fell.
        assert db.session.query(DigestVariant).filter_by(digest_id=digest_id).count() == 3
        assert db.session.get(Digest, digest_id).recipients == 5
        digests.cancel(digest_id)
