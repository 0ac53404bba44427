"""The ledger against the real database: every move of a delivery row from every status,
allowed or refused, through its one writer (delivery/ledger.py). A write that names a
claim which no longer owns the row changes nothing."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, text

from newsletter.db import unit_of_work
from newsletter.delivery import ledger
from newsletter.delivery.ledger import TRANSITIONS, ClaimedBatch, Move
from newsletter.extensions import db
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

MINE, THEIRS = "a" * 32, "b" * 32
LEASE = timedelta(seconds=60)
_readers = itertools.count()


@pytest.fixture
def issue(app, clean_state):
    with app.app_context():
        with unit_of_work():
            digest = Digest(subject="An issue", status=DigestStatus.SENDING)
            db.session.add(digest)
            db.session.flush()
            digest_id = digest.id
        yield digest_id


def make_row(digest_id: int, status: DeliveryStatus, **values) -> int:
    """One row of ``status`` for a new reader; claimed rows are ours, leased for a minute."""
    n = next(_readers)
    with unit_of_work():
        subscriber_id = db.session.execute(insert(Subscriber).values(
            email=f"r{n}@example.com", email_normalized=f"r{n}@example.com",
            status=SubscriberStatus.ACTIVE).returning(Subscriber.id)).scalar_one()
        row = {"digest_id": digest_id, "subscriber_id": subscriber_id, "status": status,
               "attempts": 1, "last_error": "550 <someone@example.com> no such user",
               "next_attempt_at": utcnow() - timedelta(seconds=1)}
        if status == DeliveryStatus.SENDING:
            row.update(claim=MINE, lease_until=utcnow() + LEASE)
        row.update(values)
        return db.session.execute(insert(Delivery).values(**row)
                                  .returning(Delivery.id)).scalar_one()


def load(delivery_id: int) -> Delivery:
    db.session.expire_all()
    return db.session.get(Delivery, delivery_id)


def snapshot(delivery: Delivery) -> tuple:
    return (delivery.status, delivery.claim, delivery.lease_until, delivery.attempted_at,
            delivery.attempts, delivery.last_error, delivery.sent_at)


def claimed_write(digest_id: int, claim: str, write) -> object:
    """Run one write of a running batch, on its own AUTOCOMMIT connection."""
    with ledger.batch_connection() as connection:
        return write(ClaimedBatch(connection, digest_id, claim, LEASE))


# The owned moves, each as a batch makes it: (write, what the allowed one leaves).
OWNED = {
    Move.MARK_IN_FLIGHT: (lambda batch, row: batch.mark_in_flight(row),
                          lambda d: d.status == DeliveryStatus.SENDING and d.attempted_at),
    Move.RENEW: (lambda batch, row: batch.renew() == 1,
                 lambda d: d.status == DeliveryStatus.SENDING
                 and d.lease_until > utcnow() + LEASE / 2),
    Move.RECORD: (lambda batch, row: batch.record(row, DeliveryStatus.SENT, None, utcnow(),
                                                  sent_at=utcnow())[0],
                  lambda d: d.status == DeliveryStatus.SENT and d.lease_until is None),
    Move.RELEASE: (lambda batch, row: batch.release([row]) is None,
                   lambda d: d.status == DeliveryStatus.PENDING and d.attempts == 0),
}


@pytest.mark.parametrize("what", list(OWNED), ids=lambda move: move.value)
def test_every_owned_move_from_every_status_and_claim(issue, what):
    write, after = OWNED[what]
    for source in DeliveryStatus:
        for claim in (MINE, THEIRS):
            delivery_id = make_row(issue, source, claim=MINE)
            before = snapshot(load(delivery_id))
            claimed_write(issue, claim, lambda batch, row=delivery_id: write(batch, row))
            delivery = load(delivery_id)
            if source in TRANSITIONS[what].sources and claim == MINE:
                assert after(delivery), (what, source)
                assert delivery.status in TRANSITIONS[what].targets
            else:  # refused: not ours, or not in a status this move starts from
                assert snapshot(delivery) == before, (what, source, claim)
            with unit_of_work():  # one claimed row at a time: renew counts them all
                db.session.delete(delivery)


@pytest.mark.parametrize("result", list(DeliveryStatus), ids=str)
def test_a_claimed_row_records_each_result_the_table_allows(issue, result):
    delivery_id = make_row(issue, DeliveryStatus.SENDING)
    before = snapshot(load(delivery_id))
    if result not in TRANSITIONS[Move.RECORD].targets:
        with pytest.raises(ValueError):
            claimed_write(issue, MINE, lambda batch: batch.record(
                delivery_id, result, None, utcnow()))
        assert snapshot(load(delivery_id)) == before
        return
    refund = result == DeliveryStatus.PENDING
    recorded = claimed_write(issue, MINE, lambda batch: batch.record(
        delivery_id, result, None, utcnow(), last_error="why", refund=refund))
    assert recorded == (True, False)
    delivery = load(delivery_id)
    assert (delivery.status, delivery.last_error, delivery.lease_until) == (result, "why", None)
    assert delivery.attempts == (0 if refund else 1)


def test_a_result_marks_the_next_row_in_flight_only_while_the_issue_sends(issue):
    first, second = (make_row(issue, DeliveryStatus.SENDING) for _ in range(2))
    assert claimed_write(issue, MINE, lambda batch: batch.record(
        first, DeliveryStatus.SENT, second, utcnow())) == (True, True)
    assert load(second).attempted_at is not None
    third, fourth = (make_row(issue, DeliveryStatus.SENDING) for _ in range(2))
    with unit_of_work():
        db.session.get(Digest, issue).status = DigestStatus.PAUSED
    assert claimed_write(issue, MINE, lambda batch: batch.record(
        third, DeliveryStatus.SENT, fourth, utcnow())) == (True, False)
    assert load(fourth).attempted_at is None
    assert not claimed_write(issue, MINE, lambda batch: batch.mark_in_flight(fourth))


def test_a_release_after_a_cancel_skips_the_row(issue):
    delivery_id = make_row(issue, DeliveryStatus.SENDING)
    with unit_of_work():
        db.session.get(Digest, issue).status = DigestStatus.CANCELLED
    claimed_write(issue, MINE, lambda batch: batch.release([delivery_id]))
    delivery = load(delivery_id)
    assert (delivery.status, delivery.claim is not None) == (DeliveryStatus.SKIPPED, True)
    assert delivery.last_error == ledger.CANCELLED_ERROR


@pytest.mark.parametrize("source", list(DeliveryStatus), ids=str)
def test_the_claim_takes_pending_and_due_deferred_rows_only(issue, source):
    delivery_id = make_row(issue, source, claim=None, lease_until=None)
    later = make_row(issue, DeliveryStatus.DEFERRED,
                     next_attempt_at=utcnow() + timedelta(hours=1))  # not due yet
    token = ledger.new_claim()
    ids = ledger.claim_and_commit(issue, 10, token)  # commits by itself
    db.session.rollback()  # so this is what another connection sees
    delivery = load(delivery_id)
    if source in TRANSITIONS[Move.CLAIM].sources:
        assert ids == [delivery_id]
        assert (delivery.status, delivery.claim, delivery.attempts) == (
            DeliveryStatus.SENDING, token, 2)
    else:
        assert ids == [] and delivery.status == source
    assert load(later).status == DeliveryStatus.DEFERRED


@pytest.mark.parametrize("source", list(DeliveryStatus), ids=str)
def test_take_back_and_skip_from_every_status(issue, source):
    expired = {"lease_until": utcnow() - timedelta(seconds=1)}
    untried = make_row(issue, source, **expired)
    in_flight = make_row(issue, source, attempted_at=utcnow(), **expired)
    twice = make_row(issue, source, attempted_at=utcnow(), resent_after_crash=True, **expired)
    alive = make_row(issue, source, lease_until=utcnow() + LEASE)
    before = {row: snapshot(load(row)) for row in (untried, in_flight, twice, alive)}
    with unit_of_work():
        ledger.take_back(issue, utcnow())
    if source in TRANSITIONS[Move.TAKE_BACK].sources:
        assert (load(untried).status, load(untried).attempts) == (DeliveryStatus.PENDING, 0)
        assert (load(in_flight).status, load(in_flight).resent_after_crash) == (
            DeliveryStatus.PENDING, True)
        assert load(twice).status == DeliveryStatus.UNKNOWN
        assert {load(row).claim for row in (untried, in_flight, twice)} == {None}
        assert snapshot(load(alive)) == before[alive]  # its worker still holds it
    else:
        assert {row: snapshot(load(row)) for row in before} == before

    with unit_of_work():
        ledger.skip_unsent(issue)
    delivery = load(alive)
    if source in TRANSITIONS[Move.SKIP_UNSENT].sources:
        assert (delivery.status, delivery.last_error) == (DeliveryStatus.SKIPPED,
                                                          ledger.CANCELLED_ERROR)
    else:
        assert delivery.status == source


@pytest.mark.parametrize("source", list(DeliveryStatus), ids=str)
def test_a_dead_claim_is_taken_back_whatever_its_lease_says(issue, source):
    alive = make_row(issue, source, lease_until=utcnow() + LEASE)
    before = snapshot(load(alive))
    with unit_of_work():
        assert ledger.take_back(issue, utcnow(), dead_claims={THEIRS}) == 0
    assert snapshot(load(alive)) == before
    with unit_of_work():
        released = ledger.take_back(issue, utcnow(), dead_claims={MINE})
    if source in TRANSITIONS[Move.TAKE_BACK].sources:
        assert released == 1
        assert (load(alive).status, load(alive).claim) == (DeliveryStatus.PENDING, None)
    else:
        assert released == 0 and snapshot(load(alive)) == before


@pytest.mark.parametrize("status", list(DeliveryStatus), ids=str)
def test_new_rows_are_pending_or_skipped(issue, status):
    n = next(_readers)
    with unit_of_work():
        subscriber_id = db.session.execute(insert(Subscriber).values(
            email=f"w{n}@example.com", email_normalized=f"w{n}@example.com",
            status=SubscriberStatus.ACTIVE).returning(Subscriber.id)).scalar_one()
    row = {"digest_id": issue, "subscriber_id": subscriber_id, "attempts": 0,
           "status": status, "variant_id": None, "last_error": None}
    if status not in TRANSITIONS[Move.WRITE].targets:
        with pytest.raises(ValueError):
            ledger.add_rows([row])
        assert db.session.scalar(select(Delivery.id).where(
            Delivery.subscriber_id == subscriber_id)) is None
        return
    with unit_of_work():
        ledger.add_rows([row])
    assert db.session.scalar(select(Delivery.status).where(
        Delivery.subscriber_id == subscriber_id)) == status


@pytest.mark.parametrize("source", list(DeliveryStatus), ids=str)
def test_erasure_clears_replies_and_keeps_the_status(issue, source):
    delivery_id = make_row(issue, source)
    subscriber_id = load(delivery_id).subscriber_id
    with unit_of_work():
        ledger.erase_errors(subscriber_id)
    delivery = load(delivery_id)
    assert (delivery.status, delivery.last_error) == (source, None)


def test_statistics_are_refreshed_with_the_rows_of_the_same_transaction(issue):
    """PostgreSQL plans a claim from what ANALYZE saw: the send's own rows, written in
    the same transaction, are counted (elsewhere the refresh does nothing)."""
    for _ in range(30):
        make_row(issue, DeliveryStatus.PENDING)
    with unit_of_work():
        ledger.refresh_statistics()
    if db.engine.dialect.name == "postgresql":
        estimate = db.session.scalar(select(text("reltuples")).select_from(
            text("pg_class")).where(text("relname = 'deliveries'")))
        assert estimate >= 30
    assert ledger.claim_and_commit(issue, 100, MINE) != []


def test_a_claim_starts_past_the_rows_it_took_and_still_takes_one_given_back(issue):
    rows = [make_row(issue, DeliveryStatus.PENDING) for _ in range(4)]
    assert ledger.claim_and_commit(issue, 2, MINE, after=rows[1]) == rows[2:]
    assert ledger.claim_and_commit(issue, 2, THEIRS, after=rows[3]) == rows[:2]
