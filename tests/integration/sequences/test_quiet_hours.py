"""Quiet hours through the sequence run and the ledger, with explicit ``now`` values:
readers in Tokyo, Paris and New York get a step only once the send window has opened
on their clock (reader time) or on the site's (otherwise), on days on either side of
both DST changes. Rows are read from the ledger; no worker is needed to write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Delivery, Enrolment, EnrolmentState, Subscriber
from newsletter.sequences import enrolment, runner, steps
from tests.factories import add_subscribers

pytestmark = pytest.mark.usefixtures("clean_state")

ZONES = {"tokyo": "Asia/Tokyo", "paris": "Europe/Paris", "newyork": "America/New_York",
         "nozone": None}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def setup(app, window: str, entered: datetime) -> None:
    for name in ZONES:
        add_subscribers(app, 1, prefix=name)
    with app.app_context(), unit_of_work():
        for subscriber in db.session.scalars(select(Subscriber)):
            subscriber.timezone = ZONES[subscriber.email.removesuffix("0@example.com")]
        steps.create_sequence("welcome")
        steps.add_step("welcome", "0s", "Welcome", "Hello")
        sequence = steps.set_window("welcome", window)
        enrolment.enrol_existing(sequence, entered)


def queued_at(app, moment: datetime) -> set[str]:
    """Run the sequence at ``moment``; who has a ledger row for the step since."""
    with app.app_context():
        with unit_of_work():
            [sequence_id] = runner.sequence_ids()
            runner.run(sequence_id, now=moment)
        return {email.removesuffix("0@example.com") for email in db.session.scalars(
            select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id))}


@pytest.mark.parametrize(("day", "expected"), [
    # Sunday 8 March 2026, the night New York's clocks skip 02:00-03:00; Paris on CET.
    ("2026-03-08", {"tokyo": "2026-03-07T23:00", "paris": "2026-03-08T07:00",
                    "nozone": "2026-03-08T07:00", "newyork": "2026-03-08T12:00"}),
    # Sunday 29 March, Paris skips 02:00-03:00; both on summer time.
    ("2026-03-29", {"tokyo": "2026-03-28T23:00", "paris": "2026-03-29T06:00",
                    "nozone": "2026-03-29T06:00", "newyork": "2026-03-29T12:00"}),
    # Sunday 25 October, Paris repeats 02:00-03:00 and is on CET; New York still EDT.
    ("2026-10-25", {"tokyo": "2026-10-24T23:00", "paris": "2026-10-25T07:00",
                    "nozone": "2026-10-25T07:00", "newyork": "2026-10-25T12:00"}),
    # Sunday 1 November, New York repeats 01:00-02:00 and is on EST.
    ("2026-11-01", {"tokyo": "2026-10-31T23:00", "paris": "2026-11-01T07:00",
                    "nozone": "2026-11-01T07:00", "newyork": "2026-11-01T13:00"}),
])
def test_each_reader_gets_the_step_when_eight_comes_on_their_clock(app, day, expected):
    app.config.update(SEND_IN_READER_TIME=True, DIGEST_SCHEDULE="mon 08:00 Europe/Paris")
    # Entered at 21:00 UTC the evening before: due at once, outside everyone's window
    # (an hour long, so that no reader's window is open then).
    entered = utc(day) - timedelta(hours=3)
    setup(app, "08:00-09:00", entered)
    assert queued_at(app, entered) == set()
    for moment in sorted(set(expected.values())):
        opened = {name for name, at in expected.items() if at <= moment}
        assert queued_at(app, utc(moment) - timedelta(minutes=1)) == opened - {
            name for name, at in expected.items() if at == moment}, moment
        assert queued_at(app, utc(moment)) == opened, moment


def test_a_window_opening_in_a_skipped_hour_opens_when_the_clocks_go_on(app):
    app.config.update(SEND_IN_READER_TIME=True, DIGEST_SCHEDULE="mon 08:00 Europe/Paris")
    entered = utc("2026-03-07T20:00")
    setup(app, "02:30-20:00", entered)
    # New York's clocks go from 01:59:59 EST to 03:00 EDT at 07:00 UTC.
    assert "newyork" not in queued_at(app, utc("2026-03-08T06:59"))
    assert "newyork" in queued_at(app, utc("2026-03-08T07:00"))


def test_without_reader_time_the_window_is_the_sites(app):
    app.config.update(SEND_IN_READER_TIME=False, DIGEST_SCHEDULE="mon 08:00 Europe/Paris")
    entered = utc("2026-06-01T00:00")  # 09:00 in Tokyo, 02:00 in Paris (the site)
    setup(app, "08:00-20:00", entered)
    assert queued_at(app, entered) == set()
    assert queued_at(app, utc("2026-06-01T06:00")) == set(ZONES)  # 08:00 in Paris
    with app.app_context():  # every reader went on to the step
        assert set(db.session.scalars(select(Enrolment.state))) == {EnrolmentState.SENDING}


def test_a_sequence_without_a_window_sends_at_any_hour(app):
    app.config.update(SEND_IN_READER_TIME=True)
    entered = utc("2026-06-01T01:00")
    setup(app, "", entered)
    assert queued_at(app, entered) == set(ZONES)
