"""readers/status.py against the real database: every allowed transition and every
refused one, in the session and on a bare AUTOCOMMIT connection (the send's path)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.mail.addresses import check_email
from newsletter.models import (
    ConsentEvent,
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import status
from newsletter.readers.status import NOW, TRANSITIONS, Change, Origin

CHANGES = [change for change, transition in TRANSITIONS.items() if transition.from_states]
CASES = [(change, start) for change in CHANGES for start in SubscriberStatus]
EARLIER = utcnow() - timedelta(days=3)


def _reader(start: SubscriberStatus) -> tuple[int, str]:
    with unit_of_work():
        subscriber = Subscriber(email="Ada@example.com", email_normalized="ada@example.com",
                                status=start, confirmed_at=EARLIER, unsubscribed_at=EARLIER)
        db.session.add(subscriber)
        db.session.flush()
        return subscriber.id, subscriber.token_nonce


def _state(subscriber_id: int):
    db.session.expire_all()
    subscriber = db.session.get(Subscriber, subscriber_id)
    events = db.session.scalars(select(ConsentEvent).where(
        ConsentEvent.subscriber_id == subscriber_id)).all()
    return subscriber, events


def _check(subscriber_id: int, change: Change, start, nonce: str, changed: bool) -> None:
    transition = TRANSITIONS[change]
    subscriber, events = _state(subscriber_id)
    if start not in transition.from_states:
        assert not changed, f"{change} from {start} must be refused"
        assert subscriber.status == start and subscriber.token_nonce == nonce
        assert events == []
        return
    assert changed, f"{change} from {start} must be allowed"
    assert subscriber.status == transition.to
    assert subscriber.token_nonce != nonce  # a link issued before cannot replay it
    [event] = events
    assert event.action == transition.action and event.email == "Ada@example.com"
    assert event.detail == "why"
    expected = {NOW: "recent", status.CLEARED: None, status.FIRST: "earlier", None: "earlier"}
    for name in ("confirmed_at", "unsubscribed_at"):
        value = getattr(subscriber, name)
        shown = None if value is None else ("earlier" if value == EARLIER else "recent")
        assert shown == expected[getattr(transition, name)], (change, name)


@pytest.mark.parametrize(("change", "start"), CASES,
                         ids=[f"{change}-from-{start}" for change, start in CASES])
def test_every_transition_is_made_or_refused_by_the_table(app, client, change, start):
    with app.app_context():
        subscriber_id, nonce = _reader(start)
        with unit_of_work():
            changed = status.change(subscriber_id, change, Origin(ConsentSource.EDITOR),
                                    detail="why")
        _check(subscriber_id, change, start, nonce, changed)


@pytest.mark.parametrize(("change", "start"), CASES,
                         ids=[f"{change}-from-{start}" for change, start in CASES])
def test_the_send_path_uses_the_same_table(app, client, change, start):
    with app.app_context():
        subscriber_id, nonce = _reader(start)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ledger:
            changed = status.change_on(ledger, subscriber_id, change,
                                       Origin(ConsentSource.BOUNCE), detail="why")
        _check(subscriber_id, change, start, nonce, changed)


def test_a_callers_condition_refuses_too(app, client):
    with app.app_context():
        subscriber_id, nonce = _reader(SubscriberStatus.PENDING)
        with unit_of_work():
            assert not status.change(subscriber_id, Change.CONFIRM, Origin(ConsentSource.LINK),
                                     Subscriber.token_nonce == "an old link's nonce")
        subscriber, events = _state(subscriber_id)
        assert subscriber.status == SubscriberStatus.PENDING and events == []
        assert subscriber.token_nonce == nonce
        with unit_of_work():
            assert status.change(subscriber_id, Change.CONFIRM, Origin(ConsentSource.LINK),
                                 Subscriber.token_nonce == nonce)
            assert not status.change(subscriber_id, Change.CONFIRM,  # the same link again
                                     Origin(ConsentSource.LINK), Subscriber.token_nonce == nonce)


@pytest.mark.parametrize("change", [Change.JOIN, Change.JOIN_CONFIRMED])
def test_new_readers_join_through_the_table(app, client, change):
    transition = TRANSITIONS[change]
    origin = Origin(ConsentSource.IMPORT, "192.0.2.1", "test")
    with app.app_context():
        with unit_of_work():
            one = status.enter(check_email("One@example.com"), "One", change, origin,
                               detail="why")
            many = status.enter_many(
                [{"email": "Two@example.com", "email_normalized": "two@example.com",
                  "name": None},
                 {"email": "one@example.com", "email_normalized": "one@example.com",
                  "name": None}],  # joined meanwhile: left out
                change, origin, "why")
        assert set(many) == {"two@example.com"}
        for subscriber_id in (one.id, many["two@example.com"]):
            subscriber, events = _state(subscriber_id)
            assert subscriber.status == transition.to
            assert (subscriber.confirmed_at is not None) == (transition.confirmed_at == NOW)
            [event] = events
            assert event.action == transition.action and event.detail == "why"
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 2


def test_a_change_is_not_a_way_to_join(app, client):
    with app.app_context(), pytest.raises(ValueError):
        status.change(1, Change.JOIN, Origin(ConsentSource.FORM))
