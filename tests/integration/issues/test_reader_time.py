"""Reader time through a real worker, SMTP server and database: one weekly issue reaches
readers in Tokyo, Paris and New York each at 08:00 their time, in waves, on weeks on
either side of both DST changes. The clock is moved with time-machine (the worker runs
in this process, so it sees the same clock); a wave not yet due is never sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from newsletter.content import articles
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.delivery import dispatch
from newsletter.extensions import db
from newsletter.issues import digests, waves
from newsletter.models import ArticleSource, Delivery, DeliveryStatus, Subscriber
from tests.factories import add_subscribers
from tests.helpers import sweep, wait_until

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

ZONES = {"tokyo": "Asia/Tokyo", "paris": "Europe/Paris", "newyork": "America/New_York",
         "nozone": None}  # a reader without a zone: the schedule's (Paris)


def readers(app) -> None:
    add_subscribers(app, 1, prefix="nozone")
    for name, zone in ZONES.items():
        if zone:
            add_subscribers(app, 1, prefix=name)
    with app.app_context(), unit_of_work():
        for subscriber in db.session.scalars(select(Subscriber)):
            subscriber.timezone = ZONES[subscriber.email.removesuffix("0@example.com")]


def rows(app) -> dict[str, tuple[DeliveryStatus, datetime | None, datetime | None]]:
    with app.app_context():
        return {email.removesuffix("0@example.com"): (status, not_before, sent_at)
                for email, status, not_before, sent_at in db.session.execute(
                    select(Subscriber.email, Delivery.status, Delivery.not_before,
                           Delivery.sent_at).join(Delivery))}


@pytest.mark.parametrize("monday", [
    "2026-03-09",  # New York on summer time, Paris not yet
    "2026-03-30",  # both on summer time
    "2026-10-26",  # Paris back on winter time, New York not yet
    "2026-11-02",  # both on winter time
])
def test_each_reader_gets_the_weekly_issue_at_eight_their_time(app, mailbox, monday):
    app.config.update(SEND_IN_READER_TIME=True, DIGEST_SCHEDULE="mon 08:00 Europe/Paris")
    readers(app)
    day = datetime.fromisoformat(monday).date()
    expected = {name: datetime.combine(day, datetime.min.time().replace(hour=8),
                                       tzinfo=ZoneInfo(zone or "Europe/Paris"))
                for name, zone in ZONES.items()}
    # Sunday afternoon UTC: Monday morning has begun at UTC+14, not in Tokyo yet.
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC) + \
        timedelta(hours=18, minutes=1)
    with time_machine.travel(start, tick=True):
        with app.app_context(), unit_of_work():
            articles.add_article(ArticleInput(
                title="Talks resume", url="https://news.example.com/talks", summary="Met.",
                categories=["World"], published_at=start - timedelta(hours=2)), ArticleSource.API)
        with app.app_context(), unit_of_work():
            digest = digests.run_weekly()
            assert digest is not None and digest.reader_local_time == f"{monday}T08:00"
            digest_id = digest.id
        ledger = rows(app)
        for name, (status, not_before, _) in ledger.items():
            assert status is DeliveryStatus.PENDING
            assert not_before == expected[name].astimezone(UTC), name
        with app.app_context(), unit_of_work():  # a second trigger: the same issue
            assert digests.run_weekly() is None
        not_due_yet(app, digest_id)

    sent: set[str] = set()
    for wave in sorted(set(expected.values()), key=lambda moment: moment.astimezone(UTC)):
        with time_machine.travel(wave.astimezone(UTC) + timedelta(seconds=1), tick=True):
            due = {name for name, moment in expected.items() if moment == wave}
            with app.app_context():
                sweep()  # what beat does every 15 s: the wave's batches
            mailbox.wait_for(len(sent) + len(due))
            sent |= due
            wait_until(lambda wave_readers=frozenset(due): all(
                rows(app)[name][0] is DeliveryStatus.SENT for name in wave_readers),
                what="the wave's rows recorded sent")
            not_due_yet(app, digest_id)
            assert {name for name, row in rows(app).items()
                    if row[0] is DeliveryStatus.SENT} == sent

    received = {message["To"].addresses[0].username.removesuffix("0"): message
                for message in mailbox.messages}
    assert set(received) == set(ZONES) and len(mailbox.messages) == len(ZONES)
    for name, (_, not_before, sent_at) in rows(app).items():
        local = sent_at.astimezone(expected[name].tzinfo)
        assert sent_at >= not_before and (local.date(), local.hour) == (day, 8), (name, local)
    with app.app_context():
        assert [counts for _, counts in waves.waves_of(digest_id)] == [
            {"sent": len([n for n in expected if expected[n] == moment])}
            for moment in sorted(set(expected.values()),
                                 key=lambda moment: moment.astimezone(UTC))]


def not_due_yet(app, digest_id: int) -> None:
    """A batch run now (the worker's own code, in this process) claims no row whose
    wave has not come, and the sweeper publishes nothing for them."""
    with app.app_context():
        assert dispatch.send_batch(digest_id) == 0
        assert sweep() == 0
