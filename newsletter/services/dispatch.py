"""Send a digest's deliveries in batches, recording each result the moment it is known.

A task claims a batch of ledger rows (PostgreSQL: FOR UPDATE SKIP LOCKED, so
workers never wait on each other), sends over the worker's one SMTP connection
and commits each row's result together with the next row's ``attempted_at``.
If the worker dies, its lease expires: untouched rows go back to pending, and
the one row that was in flight is recorded ``unknown`` instead of resent.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import and_, bindparam, select, text, update

from newsletter.extensions import db
from newsletter.mail.bulk import BulkMessageFactory, new_marker
from newsletter.mail.links import external_url, url_adapter
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.mail.verp import DigestSenders, feedback_id
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from newsletter.services import deliverability, digests

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
_factories: dict[tuple, BulkMessageFactory] = {}  # per process: render once per issue


def _factory(digest: Digest) -> BulkMessageFactory:
    key = (digest.id, digest.created_at, current_app.config["BASE_URL"])
    if key not in _factories:
        marker = new_marker()
        config = current_app.config
        _factories.clear()  # one issue at a time is the common case; keep memory flat
        _factories[key] = BulkMessageFactory(
            digests.render(digest, marker), marker,
            mail_from=config["MAIL_FROM"], list_id=config["LIST_ID"],
            archive_url=external_url("public.archive_issue", digest_id=digest.id),
            message_id_prefix=f"digest-{digest.id}",
            feedback_id=feedback_id(digest.id, config["LIST_ID"], config["MAIL_FROM"]),
        )
    return _factories[key]


def claim(digest_id: int, size: int) -> list[int]:
    """Lease up to ``size`` rows: pending ones first, then deferred ones now due.

    One condition per query, so each is a seek on the (digest_id, status) index
    rather than a scan past the rows already sent.
    """
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
            .values(status=DeliveryStatus.SENDING, lease_until=now + lease, attempted_at=None,
                    attempts=Delivery.attempts + 1)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        db.session.commit()
        if ids:
            return sorted(ids)
    return []


class SendRate:
    """A cap on messages per second across every worker, counted in Redis."""

    def __init__(self, rate: float | None):
        self.rate = rate
        if rate:
            self.window = max(1, math.ceil(1 / rate))
            self.budget = max(1, int(rate * self.window))
            self.redis = redis.Redis.from_url(current_app.config["REDIS_URL"])

    def wait(self) -> None:
        while self.rate:
            slot = int(time.time()) // self.window
            key = f"newsletter:send-rate:{slot}"
            used = self.redis.incr(key)
            if used == 1:
                self.redis.expire(key, self.window * 2)
            if used <= self.budget:
                return
            time.sleep((slot + 1) * self.window - time.time())


def send_batch(digest_id: int) -> int:
    """Claim and send one batch; returns how many rows it handled."""
    digest = db.session.get(Digest, digest_id)
    if digest is None or digest.status != DigestStatus.SENDING:
        return 0
    config = current_app.config
    ids = claim(digest_id, config["SEND_BATCH_SIZE"])
    if not ids:
        digests.finish_if_done(digest_id)
        return 0
    factory = _factory(digest)
    links = url_adapter()  # once per batch, not per message
    transport = current_app.extensions["smtp"]
    rate = SendRate(config["SEND_RATE"])
    senders = DigestSenders(digest_id)  # VERP: each reader's bounce names its delivery
    rows = db.session.execute(
        select(Delivery.id, Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.status,
               Subscriber.unsubscribe_key)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids)).order_by(Delivery.id)
    ).all()
    db.session.commit()
    # Each result is one autocommitted statement: one round trip per message.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ledger:
        ledger.execute(MARK_ATTEMPTED, {"id": rows[0][0], "now": utcnow()})
        left: set[int] = set()
        for index, (delivery_id, subscriber_id, email, name, status, key) in enumerate(rows):
            if index and index % STATUS_REFRESH_EVERY == 0:
                left = _no_longer_active(ledger, [row[1] for row in rows[index:]])
            if status != SubscriberStatus.ACTIVE or subscriber_id in left:
                result = None  # unsubscribed or bounced since the send began
            else:
                rate.wait()
                unsubscribe_url = links.build("public.unsubscribe", {"token": key},
                                              force_external=True)
                try:
                    message = factory.build(subscriber_id, email, name, unsubscribe_url)
                except Exception as error:  # an address no message can carry: this row only
                    result = DeliveryResult(Outcome.FAILED, f"message not built: {error}"[:500])
                else:
                    result = transport.deliver(senders.for_subscriber(subscriber_id), email,
                                               message)
            next_id = rows[index + 1][0] if index + 1 < len(rows) else None
            _record(ledger, delivery_id, subscriber_id, result, next_id)
    deliverability.check_issue(digest_id)  # pauses the send when bounces or complaints spike
    digests.finish_if_done(digest_id)
    return len(rows)


# Who unsubscribed while a batch runs is re-read this often (messages), so a
# reader who leaves mid-send gets at most this many more messages' worth of delay.
STATUS_REFRESH_EVERY = 10


def _no_longer_active(ledger, subscriber_ids: list[int]) -> set[int]:
    return set(ledger.scalars(select(Subscriber.id).where(
        Subscriber.id.in_(subscriber_ids), Subscriber.status != SubscriberStatus.ACTIVE)))


MARK_ATTEMPTED = text("UPDATE deliveries SET attempted_at = :now WHERE id = :id").bindparams(
    bindparam("now", type_=UTCDateTime))

# Records one row's result and marks the next row as in flight, atomically: a worker
# that dies between the two can never leave a sent row looking unsent.
RECORD_RESULT = text("""
UPDATE deliveries SET
  status = CASE WHEN id = :id THEN :status ELSE status END,
  sent_at = CASE WHEN id = :id THEN :sent_at ELSE sent_at END,
  last_error = CASE WHEN id = :id THEN :last_error ELSE last_error END,
  next_attempt_at = CASE WHEN id = :id THEN :next_attempt_at ELSE next_attempt_at END,
  lease_until = CASE WHEN id = :id THEN NULL ELSE lease_until END,
  attempted_at = CASE WHEN id = :id THEN :attempted_at WHEN id = :next_id THEN :now
                      ELSE attempted_at END
WHERE id IN (:id, :next_id)
""").bindparams(*(bindparam(name, type_=UTCDateTime) for name in
                  ("sent_at", "next_attempt_at", "attempted_at", "now")))


def _record(ledger, delivery_id: int, subscriber_id: int, result: DeliveryResult | None,
            next_id: int | None) -> None:
    now = utcnow()
    values = {"id": delivery_id, "next_id": next_id if next_id is not None else -1,
              "now": now, "sent_at": None, "next_attempt_at": None, "attempted_at": now,
              "last_error": None}
    if result is None:
        values.update(status=DeliveryStatus.SKIPPED.value,
                      last_error="subscriber no longer active")
    elif result.outcome is Outcome.SENT:
        values.update(status=DeliveryStatus.SENT.value, sent_at=now)
    elif result.outcome in (Outcome.DEFERRED, Outcome.UNREACHABLE):
        attempts = ledger.scalar(select(Delivery.attempts).where(Delivery.id == delivery_id))
        if attempts >= MAX_ATTEMPTS:
            values.update(status=DeliveryStatus.FAILED.value, last_error=result.detail)
        else:
            delay = current_app.config["SEND_RETRY_DELAY"] * 2 ** (attempts - 1)
            values.update(status=DeliveryStatus.DEFERRED.value, attempted_at=None,
                          next_attempt_at=now + timedelta(seconds=delay),
                          last_error=result.detail)
    elif result.outcome is Outcome.UNKNOWN:
        values.update(status=DeliveryStatus.UNKNOWN.value, last_error=result.detail)
    else:  # FAILED or BOUNCED
        values.update(status=DeliveryStatus.FAILED.value, last_error=result.detail)
        if result.outcome is Outcome.BOUNCED:
            ledger.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id, Subscriber.status == SubscriberStatus.ACTIVE)
                .values(status=SubscriberStatus.BOUNCED, updated_at=now))
    if result is not None and result.outcome is not Outcome.SENT:
        log.warning("delivery %s %s: %s", delivery_id, values["status"], values["last_error"])
    ledger.execute(RECORD_RESULT, values)
