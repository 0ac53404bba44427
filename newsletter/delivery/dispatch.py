"""Send a digest's deliveries in batches, recording each result the moment it is known.

A task claims a batch of ledger rows (PostgreSQL: FOR UPDATE SKIP LOCKED, so
workers never wait on each other) under a fresh owner token, the *claim*. Every
later write about those rows says it (``WHERE id = ? AND claim = ?``) and renews
the lease; a write that matches nothing means the sweeper gave the row to
someone else, so the batch stops at once. Each row's result is committed
together with marking the next row in flight (one round trip per message), and
that same statement only marks the next row while the issue is still sending,
so pause and cancel act within one message.

If the worker dies, its lease expires: untouched rows go back to pending, and
the one row that was in flight is resent once (same Message-ID), then recorded
``unknown`` if that resend is cut by a crash too.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from flask import current_app
from sqlalchemy import and_, bindparam, select, text, update

from newsletter.delivery import guard
from newsletter.delivery.relay import Relay, SendRate
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.mail.bulk import BulkMessageFactory, new_marker
from newsletter.mail.links import external_url, url_adapter
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.mail.verp import DigestSenders, feedback_id
from newsletter.models import (
    ConsentSource,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    DigestVariant,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from newsletter.readers import status as reader_status

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# Per process: render once per (issue, variant). Bounded, least recently used out: the
# ledger keeps a variant's rows together, so a worker seldom comes back to an old one.
FACTORY_CACHE_SIZE = 64
_factories: OrderedDict[tuple, BulkMessageFactory] = OrderedDict()


def _factory(digest: Digest, variant_id: int | None) -> BulkMessageFactory:
    """The message factory of one copy of an issue (None: rows written before copies)."""
    key = (digest.id, digest.created_at, variant_id, current_app.config["BASE_URL"])
    if key in _factories:
        _factories.move_to_end(key)
    else:
        marker = new_marker()
        config = current_app.config
        while len(_factories) >= FACTORY_CACHE_SIZE:
            _factories.popitem(last=False)
        variant = db.session.get(DigestVariant, variant_id) if variant_id is not None else None
        _factories[key] = BulkMessageFactory(
            digests.render(digest, marker, variant=variant), marker,
            mail_from=config["MAIL_FROM"], list_id=config["LIST_ID"],
            archive_url=external_url("public.archive_issue", digest_id=digest.id),
            message_id_prefix=f"digest-{digest.id}",
            feedback_id=feedback_id(digest.id, config["LIST_ID"], config["MAIL_FROM"]),
        )
    return _factories[key]


def claim(digest_id: int, size: int) -> tuple[str, list[int]]:
    """Lease up to ``size`` rows under a new owner token: pending ones first, then
    deferred ones now due. Returns the token and the row ids.

    One condition per query, so each is a seek on the (digest_id, status) index
    rather than a scan past the rows already sent.
    """
    token = secrets.token_hex(16)
    now = utcnow()
    lease = timedelta(seconds=current_app.config["SEND_LEASE"])
    for condition in (Delivery.status == DeliveryStatus.PENDING,
                      and_(Delivery.status == DeliveryStatus.DEFERRED,
                           Delivery.next_attempt_at <= now)):
        claimable = (
            select(Delivery.id)
            .where(Delivery.digest_id == digest_id, condition)
            .order_by(Delivery.id)
            .limit(size)
            .with_for_update(skip_locked=True)
        )
        ids = db.session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(claimable.scalar_subquery()))
            .values(status=DeliveryStatus.SENDING, claim=token, lease_until=now + lease,
                    attempted_at=None, attempts=Delivery.attempts + 1)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        db.session.commit()
        if ids:
            return token, sorted(ids)
    return token, []


class Stop(Enum):
    DONE = "done"  # every row of the batch has its result
    HALTED = "halted"  # paused, cancelled, or the claim was lost: someone else goes on
    UNREACHABLE = "unreachable"  # the relay could not be reached: try again later
    BREAKER = "breaker"  # ... for a whole window: the send paused itself


@dataclass
class Row:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str | None
    active: bool
    attempts: int
    unsubscribe_key: str
    variant_id: int | None

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


def send_batch(digest_id: int) -> int:
    """Claim and send one batch, then hand on to the next; returns how many rows it handled."""
    digest = db.session.get(Digest, digest_id)
    if digest is None or digest.status != DigestStatus.SENDING:
        return 0
    config = current_app.config
    token, ids = claim(digest_id, config["SEND_BATCH_SIZE"])
    if not ids:
        digests.finish_if_done(digest_id)
        return 0
    rows = [Row(*row) for row in db.session.execute(
        select(Delivery.id, Subscriber.id, Subscriber.email, Subscriber.name,
               Subscriber.status == SubscriberStatus.ACTIVE, Delivery.attempts,
               Subscriber.unsubscribe_key, Delivery.variant_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids)).order_by(Delivery.id)
    ).all()]
    factories = {variant_id: _factory(digest, variant_id)
                 for variant_id in {row.variant_id for row in rows}}
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ledger:
        relaxed = _relax_commits(ledger)
        try:
            batch = Batch(ledger, digest_id, token, rows, factories)
            stop, done = batch.run()
            _release(ledger, digest_id, token, [row.delivery_id for row in rows[done:]])
        finally:
            if relaxed:
                with contextlib.suppress(Exception):  # a broken connection is discarded anyway
                    ledger.execute(text("RESET synchronous_commit"))
    if stop is Stop.BREAKER:
        digests.pause_for_relay(digest_id, batch.last_error)
    guard.check_issue(digest_id)  # pauses the send when bounces or complaints spike
    digests.after_batch(digest_id, retry_later=stop is Stop.UNREACHABLE,
                        hand_on=stop is Stop.DONE)
    return done


def _relax_commits(ledger) -> bool:
    """PostgreSQL: the ledger's result statements commit without waiting for the WAL
    flush. A database-server crash can then lose the last few hundred milliseconds of
    results; those rows come back as in flight or claimed, and the crash rule (resend
    once, same Message-ID) covers them. A worker crash loses nothing: the server has
    every statement it answered."""
    if ledger.dialect.name != "postgresql":
        return False
    ledger.execute(text("SET synchronous_commit = off"))
    return True


class Batch:
    def __init__(self, ledger, digest_id: int, token: str, rows: list[Row],
                 factories: dict[int | None, BulkMessageFactory]):
        config = current_app.config
        self.ledger, self.digest_id, self.token, self.rows = ledger, digest_id, token, rows
        self.record = HotStatement(ledger, RECORD_RESULT)
        self.factories = factories  # by variant id
        self.links = url_adapter()  # once per batch
        self.senders = DigestSenders(digest_id)  # VERP: each reader's bounce names its delivery
        self.transport = current_app.extensions["smtp"]
        self.rate = SendRate(config["SEND_RATE"])
        self.relay = Relay(digest_id)
        self.lease = timedelta(seconds=config["SEND_LEASE"])
        self.renew_every = config["SEND_LEASE"] / 3
        self.renewed_at = time.monotonic()
        self.left: set[int] = set()  # readers who left since the claim
        self.last_error = ""

    def plan(self, row: Row) -> str:
        if not row.active or row.subscriber_id in self.left:
            return "skip"
        if self.relay.backing_off(row.domain):
            return "backoff"
        return "send"

    def run(self) -> tuple[Stop, int]:
        """Send the rows in order; returns why it stopped and how many rows have results."""
        rows = self.rows
        self.relay.refresh_backoff({row.domain for row in rows})
        marked = False  # is rows[index] already marked in flight (by the previous write)?
        for index, row in enumerate(rows):
            if index and index % STATUS_REFRESH_EVERY == 0:
                coming = rows[index:index + STATUS_REFRESH_EVERY]  # the rows until the next look
                self.left = _no_longer_active(self.ledger, [r.subscriber_id for r in coming])
                self.relay.refresh_backoff({r.domain for r in coming})
            if not self._renew_if_due(len(rows) - index):
                return Stop.HALTED, index
            action = self.plan(row)
            result = None
            if action == "send":
                if not marked:
                    self.rate.wait()  # before the row is marked: waiting is not sending
                    if not self._mark_in_flight(row.delivery_id):
                        return Stop.HALTED, index
                result = self._deliver(row)
            following = rows[index + 1] if index + 1 < len(rows) else None
            mark_next = (following is not None and not self.rate.rate
                         and (result is None or result.outcome is not Outcome.UNREACHABLE)
                         and self.plan(following) == "send")
            recorded, marked = self._record(row, action, result,
                                            following.delivery_id if mark_next else None)
            if not recorded:
                log.error("delivery %s: claim lost to another worker after sending; "
                          "stopping this batch", row.delivery_id)
                return Stop.HALTED, index + 1
            if result is not None and result.outcome is Outcome.UNREACHABLE:
                self.last_error = result.detail
                tripped = self.relay.unreachable()
                return (Stop.BREAKER if tripped else Stop.UNREACHABLE), index + 1
            if result is not None:
                self.relay.connected()
            if mark_next and not marked:
                return Stop.HALTED, index + 1  # paused or cancelled (or the claim lost)
        return Stop.DONE, len(rows)

    def _deliver(self, row: Row) -> DeliveryResult:
        try:
            unsubscribe_url = self.links.build(
                "public.unsubscribe", {"token": row.unsubscribe_key},
                force_external=True)
            message = self.factories[row.variant_id].build(row.subscriber_id, row.email,
                                                           row.name, unsubscribe_url)
        except Exception as error:  # this reader's message, not the batch: record and go on
            log.exception("delivery %s: could not build the message", row.delivery_id)
            return DeliveryResult(Outcome.FAILED, f"could not build the message: {error}"[:500])
        return self.transport.deliver(self.senders.for_subscriber(row.subscriber_id), row.email,
                                      message)

    def _renew_if_due(self, held: int) -> bool:
        """Extend the lease of every row this batch still holds; False when some row
        is no longer ours (the sweeper took it back)."""
        if time.monotonic() - self.renewed_at < self.renew_every:
            return True
        renewed = self.ledger.execute(RENEW_LEASE, {
            "claim": self.token, "lease": utcnow() + self.lease}).rowcount
        self.renewed_at = time.monotonic()
        if renewed < held:
            log.warning("digest %s: claim %s lost %d row(s); stopping this batch",
                        self.digest_id, self.token[:8], held - renewed)
            return False
        return True

    def _mark_in_flight(self, delivery_id: int) -> bool:
        now = utcnow()
        return self.ledger.execute(MARK_IN_FLIGHT, {
            "id": delivery_id, "claim": self.token, "digest_id": self.digest_id,
            "now": now, "lease": now + self.lease}).rowcount == 1

    def _record(self, row: Row, action: str, result: DeliveryResult | None,
                next_id: int | None) -> tuple[bool, bool]:
        """Write one row's result (and mark the next in flight): (recorded, next marked)."""
        now = utcnow()
        values = {"id": row.delivery_id, "next_id": next_id if next_id is not None else -1,
                  "claim": self.token, "digest_id": self.digest_id, "now": now,
                  "lease": now + self.lease, "sent_at": None, "next_attempt_at": None,
                  "attempted_at": now, "last_error": None, "refund": 0}
        if action == "skip":
            values.update(status=DeliveryStatus.SKIPPED.value,
                          last_error="subscriber no longer active")
        elif action == "backoff":
            until = self.relay.backing_off(row.domain) or time.time()
            values.update(status=DeliveryStatus.DEFERRED.value, attempted_at=None, refund=1,
                          next_attempt_at=datetime.fromtimestamp(until, now.tzinfo),
                          last_error=f"not tried: {row.domain} is backing off after a 4xx")
        elif result.outcome is Outcome.SENT:
            values.update(status=DeliveryStatus.SENT.value, sent_at=now)
        elif result.outcome is Outcome.UNREACHABLE:
            # Says nothing about the reader: back to pending, no attempt spent.
            values.update(status=DeliveryStatus.PENDING.value, attempted_at=None, refund=1,
                          last_error=result.detail)
        elif result.outcome is Outcome.DEFERRED:
            if _reply_code(result) in (421, 451):
                self.relay.back_off(row.domain)
            if row.attempts >= MAX_ATTEMPTS:
                values.update(status=DeliveryStatus.FAILED.value, last_error=result.detail)
            else:
                delay = current_app.config["SEND_RETRY_DELAY"] * 2 ** (row.attempts - 1)
                values.update(status=DeliveryStatus.DEFERRED.value, attempted_at=None,
                              next_attempt_at=now + timedelta(seconds=delay),
                              last_error=result.detail)
        elif result.outcome is Outcome.UNKNOWN:
            values.update(status=DeliveryStatus.UNKNOWN.value, last_error=result.detail)
        else:  # FAILED or BOUNCED
            values.update(status=DeliveryStatus.FAILED.value, last_error=result.detail)
            if result.outcome is Outcome.BOUNCED:  # only an active reader: as it was sent
                reader_status.change_on(
                    self.ledger, row.subscriber_id, reader_status.Change.BOUNCE,
                    reader_status.Origin(ConsentSource.BOUNCE),
                    Subscriber.status == SubscriberStatus.ACTIVE,
                    detail=f"refused when sent: {result.detail}"[:1000])
        if result is not None and result.outcome is not Outcome.SENT:
            log.warning("delivery %s %s: %s", row.delivery_id, values["status"],
                        values["last_error"])
        written = set(self.record.ids(values))
        return row.delivery_id in written, next_id in written


class HotStatement:
    """The statement run once per message. On PostgreSQL it goes straight to psycopg as
    a prepared statement (SQLAlchemy's per-call work is a tenth of a message's cost);
    elsewhere through SQLAlchemy, whose type processing SQLite needs."""

    def __init__(self, ledger, statement):
        self.ledger, self.statement, self.cursor = ledger, statement, None
        if ledger.dialect.name == "postgresql":
            self.sql = str(statement.compile(dialect=ledger.dialect))
            self.cursor = ledger.connection.driver_connection.cursor()

    def ids(self, values: dict) -> list[int]:
        if self.cursor is None:
            return list(self.ledger.scalars(self.statement, values))
        self.cursor.execute(self.sql, values, prepare=True)
        return [row[0] for row in self.cursor.fetchall()]


def _reply_code(result: DeliveryResult) -> int | None:
    code = getattr(result, "code", None)  # DeliveryResult.code, where the transport has it
    if code is None and result.detail[:3].isdigit():
        code = int(result.detail[:3])
    return code


def _release(ledger, digest_id: int, token: str, delivery_ids: list[int]) -> None:
    """Give back the rows a stopped batch never tried (no attempt spent)."""
    if delivery_ids:
        ledger.execute(RELEASE, {"ids": delivery_ids, "claim": token, "digest_id": digest_id})


# Who unsubscribed while a batch runs is re-read this often (messages), so a
# reader who leaves mid-send gets at most this many more messages' worth of delay.
STATUS_REFRESH_EVERY = 10


def _no_longer_active(ledger, subscriber_ids: list[int]) -> set[int]:
    return set(ledger.scalars(select(Subscriber.id).where(
        Subscriber.id.in_(subscriber_ids), Subscriber.status != SubscriberStatus.ACTIVE)))


_STILL_SENDING = "EXISTS (SELECT 1 FROM digests WHERE digests.id = :digest_id " \
                 "AND digests.status = 'sending')"

# Marks one row in flight, only while we own it and the issue is still sending.
MARK_IN_FLIGHT = text(f"""
UPDATE deliveries SET attempted_at = :now, lease_until = :lease
WHERE id = :id AND claim = :claim AND status = 'sending' AND {_STILL_SENDING}
""").bindparams(*(bindparam(name, type_=UTCDateTime) for name in ("now", "lease")))

# Records one row's result and marks the next row in flight (renewing its lease), in
# one statement: a worker that dies between the two can never leave a sent row
# looking unsent. Both rows must still carry our claim; the next one is only marked
# while the issue is sending (pause and cancel act within one message).
RECORD_RESULT = text(f"""
UPDATE deliveries SET
  status = CASE WHEN id = :id THEN :status ELSE status END,
  sent_at = CASE WHEN id = :id THEN :sent_at ELSE sent_at END,
  last_error = CASE WHEN id = :id THEN :last_error ELSE last_error END,
  next_attempt_at = CASE WHEN id = :id THEN :next_attempt_at ELSE next_attempt_at END,
  attempts = CASE WHEN id = :id THEN attempts - :refund ELSE attempts END,
  lease_until = CASE WHEN id = :id THEN NULL ELSE :lease END,
  attempted_at = CASE WHEN id = :id THEN :attempted_at ELSE :now END
WHERE id IN (:id, :next_id) AND claim = :claim AND status = 'sending'
  AND (id = :id OR {_STILL_SENDING})
RETURNING id
""").bindparams(*(bindparam(name, type_=UTCDateTime) for name in
                  ("sent_at", "next_attempt_at", "attempted_at", "now", "lease")))

RENEW_LEASE = text("""
UPDATE deliveries SET lease_until = :lease WHERE claim = :claim AND status = 'sending'
""").bindparams(bindparam("lease", type_=UTCDateTime))

# Rows of a cancelled issue become skipped in the same statement, so nobody ever
# sees them pending under a cancelled issue.
_CANCELLED = "EXISTS (SELECT 1 FROM digests WHERE digests.id = :digest_id " \
             "AND digests.status = 'cancelled')"
RELEASE = text(f"""
UPDATE deliveries SET
  status = CASE WHEN {_CANCELLED} THEN 'skipped' ELSE 'pending' END,
  last_error = CASE WHEN {_CANCELLED} THEN 'issue cancelled by an editor' ELSE last_error END,
  lease_until = NULL, attempted_at = NULL, attempts = attempts - 1
WHERE id IN :ids AND claim = :claim AND status = 'sending'
""").bindparams(bindparam("ids", expanding=True))
