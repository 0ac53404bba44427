"""Send a digest's deliveries in batches, recording each result the moment it is known.

The send loop over the ledger (``delivery/ledger.py``, the one writer of delivery
rows): a task claims a batch of rows under a fresh owner token, the *claim*;
every later write about those rows names it and renews the lease, and a write
that matches nothing means the sweeper gave the row to someone else, so the
batch stops at once. Each row's result is committed together with marking the
next row in flight (one round trip per message), and that same statement only
marks the next row while the issue is still sending, so pause and cancel act
within one message.

While a batch runs, its claim has a heartbeat in Redis (``delivery/heartbeat.py``).
If the worker dies, the heartbeat stops and the sweeper takes the rows back within
seconds (the lease is the fallback when Redis cannot tell): untouched rows go back
to pending, and the one row that was in flight is resent once (same Message-ID),
then recorded ``unknown`` if that resend is cut by a crash too.

A worker asked to stop (SIGTERM, to the pool process too: ``request_stop``)
finishes and records the message in hand, gives back the rest of its batch and
hands the send on to the next task, so a stop never cuts a message in two.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from flask import current_app
from sqlalchemy import select, update

from newsletter.analytics import tracking
from newsletter.content import site_settings
from newsletter.delivery import guard, heartbeat, ledger
from newsletter.delivery.ledger import ClaimedBatch
from newsletter.delivery.relay import Relay, RelayPool, SendRate
from newsletter.extensions import db
from newsletter.instruments import BATCH_SECONDS, SMTP_SEND_SECONDS
from newsletter.issues import digests
from newsletter.mail.bulk import BulkMessageFactory, new_marker
from newsletter.mail.links import UnsubscribeUrls, external_url, url_adapter
from newsletter.mail.relays import relays_from_config
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.mail.verp import DigestSenders, MessageIds, feedback_id
from newsletter.models import (
    ConsentSource,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestKind,
    DigestStatus,
    DigestVariant,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import status as reader_status
from newsletter.sequences import step_mail
from newsletter.sequences import steps as sequence_steps

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# Per process: render once per (issue, variant). Bounded, least recently used out: the
# ledger keeps a variant's rows together, so a worker seldom comes back to an old one.
FACTORY_CACHE_SIZE = 64
_factories: OrderedDict[tuple, BulkMessageFactory] = OrderedDict()


def _factory(digest: Digest, variant_id: int | None) -> BulkMessageFactory:
    """The message factory of one copy of an issue (None: rows written before copies),
    or of a sequence step (rendered afresh after each edit: its revision is in the key)."""
    step = (sequence_steps.step_for_digest(digest.id)
            if digest.kind == DigestKind.SEQUENCE_STEP else None)
    config = current_app.config
    key = (digest.id, digest.created_at, variant_id, config["BASE_URL"],
           step.revision if step is not None else None, config["TRACK_CLICKS"],
           config["TRACK_READERS"])
    if key in _factories:
        _factories.move_to_end(key)
    else:
        marker = new_marker()
        while len(_factories) >= FACTORY_CACHE_SIZE:
            _factories.popitem(last=False)
        variant = (db.session.get(DigestVariant, variant_id) if variant_id is not None
                   else None)
        if step is not None:  # a step has no archive page: its readers get the archive's
            # Its copy is its readers' language.
            rendered = step_mail.render(step, marker, variant and variant.language)
            archive_url = external_url("public.archive")
        else:
            rendered = digests.render(digest, marker, variant=variant)
            archive_url = external_url("public.archive_issue", digest_id=digest.id)
        copy_marker = copy_token = None
        if tracking.enabled():  # once per variant; per reader the copy token
            copy_marker = tracking.new_copy_marker()
            rendered = tracking.track(rendered, digest.id, variant_id,
                                      tracking.issue_links(digest), copy_marker)
            copy_token = tracking.CopyTokens(digest.id)
        _factories[key] = BulkMessageFactory(
            rendered, marker, copy_marker=copy_marker, copy_token=copy_token,
            mail_from=site_settings.mail_from(), list_id=config["LIST_ID"],
            reply_to=site_settings.current().reply_to or None,
            archive_url=archive_url,
            message_id=MessageIds(digest.id),
            feedback_id=feedback_id(digest.id, config["LIST_ID"], config["MAIL_FROM"]),
        )
    return _factories[key]


# Per process: the highest ledger id claimed of each issue, where its next claim starts.
_claimed_up_to: dict[tuple, int] = {}

_stop_requested = threading.Event()


def request_stop() -> None:
    """This process is shutting down: a running batch ends after the message in hand."""
    _stop_requested.set()


class Stop(Enum):
    DONE = "done"  # every row of the batch has its result
    STOPPING = "stopping"  # this process is shutting down: the rest was given back
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

    @functools.cached_property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


def send_batch(digest_id: int) -> int:
    """Claim and send one batch, then hand on to the next; returns how many rows it handled.

    The claim commits at once (``ledger.claim_and_commit``) and each result commits
    on the batch's own connection; what follows the batch (a pause, the next task,
    finishing the issue) is the caller's transaction.
    """
    digest = db.session.get(Digest, digest_id)
    if digest is None or digest.status != DigestStatus.SENDING:
        return 0
    if _stop_requested.is_set():  # a task taken as the worker stops: the next worker's
        digests.after_batch(digest_id, retry_later=False, hand_on=True)
        return 0
    token = ledger.new_claim()
    with heartbeat.Heartbeat(token):
        return _claim_and_send(digest, token)


def _mark_untracked_and_commit(digest_id: int) -> None:
    """This worker's copies will not name their reader (per-reader tracking is off
    here), so the issue no longer counts for the sunset policy. Commits (a deliberate
    early commit, like the claim's): before any such copy goes out."""
    db.session.execute(update(Digest).where(Digest.id == digest_id)
                       .values(readers_tracked=False))
    db.session.commit()


def _claim_and_send(digest: Digest, token: str) -> int:
    digest_id = digest.id
    config = current_app.config
    issue = (digest_id, digest.created_at)  # an id alone can come back (a discarded draft's)
    ids = ledger.claim_and_commit(digest_id, config["SEND_BATCH_SIZE"], token,
                                  after=_claimed_up_to.get(issue, 0))
    if not ids:
        digests.finish_if_done(digest_id)
        return 0
    _claimed_up_to[issue] = max(ids)
    rows = [Row(*row) for row in db.session.execute(
        select(Delivery.id, Subscriber.id, Subscriber.email, Subscriber.name,
               Subscriber.status == SubscriberStatus.ACTIVE, Delivery.attempts,
               Subscriber.unsubscribe_key, Delivery.variant_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids)).order_by(Delivery.id)
    ).all()]
    if digest.readers_tracked and not tracking.tracks_readers():
        _mark_untracked_and_commit(digest_id)
    factories = {variant_id: _factory(digest, variant_id)
                 for variant_id in {row.variant_id for row in rows}}
    # Only reads since the claim committed: end that transaction rather than hold
    # its snapshot through the whole send.
    db.session.rollback()
    with BATCH_SECONDS.time(), ledger.batch_connection() as connection:
        batch = Batch(connection, digest_id, token, rows, factories)
        stop, done = batch.run()
        batch.claimed.release([row.delivery_id for row in rows[done:]])
    if stop is Stop.BREAKER:
        digests.pause_for_relay(digest_id, batch.last_error)
    guard.check_issue(digest_id)  # pauses the send when bounces or complaints spike
    digests.after_batch(digest_id, retry_later=stop is Stop.UNREACHABLE,
                        hand_on=stop in (Stop.DONE, Stop.STOPPING))
    return done


class Batch:
    def __init__(self, ledger, digest_id: int, token: str, rows: list[Row],
                 factories: dict[int | None, BulkMessageFactory]):
        config = current_app.config
        self.ledger, self.digest_id, self.rows = ledger, digest_id, rows
        self.lease = timedelta(seconds=config["SEND_LEASE"])
        self.claimed = ClaimedBatch(ledger, digest_id, token, self.lease)
        self.factories = factories  # by variant id
        self.unsubscribe_urls = UnsubscribeUrls(url_adapter())  # once per batch
        self.senders = DigestSenders(digest_id)  # VERP: each reader's bounce names its delivery
        self.pool = RelayPool(current_app.extensions["smtp_relays"], relays_from_config(config))
        self.use(self.pool.choose() or self.pool.first_to_probe())
        self.tried = {self.transport.name}  # relays this batch found unreachable or used
        self.answered: set[str] = set()  # relays that took a transaction in this batch
        self.delivered_by: str | None = None  # the relay that answered for the row in hand
        self.relay = Relay(digest_id)
        self.renew_every = config["SEND_LEASE"] / 3
        self.renewed_at = time.monotonic()
        self.left: set[int] = set()  # readers who left since the claim
        self.last_error = ""

    def use(self, transport) -> None:
        """Send through this relay, at its own rate when it has one."""
        self.transport = transport
        own = self.pool.rates.get(transport.name)
        self.rate = (SendRate(own, key=f"{SendRate.KEY}:{transport.name}") if own
                     else SendRate(current_app.config["SEND_RATE"]))

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
        refreshed_at = time.monotonic()
        marked = False  # is rows[index] already marked in flight (by the previous write)?
        for index, row in enumerate(rows):
            if time.monotonic() - refreshed_at >= STATUS_REFRESH_SECONDS:
                coming = rows[index:]
                self.left = _no_longer_active(self.ledger, [r.subscriber_id for r in coming])
                self.relay.refresh_backoff({r.domain for r in coming})
                refreshed_at = time.monotonic()
            if _stop_requested.is_set():  # even if marked in flight: not sent yet
                return Stop.STOPPING, index
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
                self.last_error = f"{self.transport.name}: {result.detail}"
                self.pool.failed(self.transport.name)
                other = self.pool.choose(self.tried)
                if other is None:  # the row went back to pending; later, or paused
                    return (Stop.BREAKER if self.pool.all_open() else Stop.UNREACHABLE,
                            index + 1)
                log.warning("digest %s: relay %s unreachable, going on through %s",
                            self.digest_id, self.transport.name, other.name)
                self.use(other)
                self.tried.add(other.name)
                continue
            if result is not None and self.transport.name not in self.answered:
                self.answered.add(self.transport.name)
                self.pool.answered(self.transport.name)
            if mark_next and not marked:
                return Stop.HALTED, index + 1  # paused or cancelled (or the claim lost)
        return Stop.DONE, len(rows)

    def _deliver(self, row: Row) -> DeliveryResult:
        try:
            message = self.factories[row.variant_id].build(
                row.subscriber_id, row.email, row.name,
                self.unsubscribe_urls(row.unsubscribe_key))
        except Exception as error:  # this reader's message, not the batch: record and go on
            log.exception("delivery %s: could not build the message", row.delivery_id)
            return DeliveryResult(Outcome.FAILED, f"could not build the message: {error}"[:500])
        started = time.perf_counter()
        self.delivered_by = self.transport.name
        # A built message has no line starting with "." (BulkMessageFactory.build).
        result = self.transport.deliver(self.senders.for_subscriber(row.subscriber_id),
                                        row.email, message, dot_free=True)
        _send_seconds(self.transport.name, result.outcome).observe(
            time.perf_counter() - started)
        return result

    def _renew_if_due(self, held: int) -> bool:
        """Extend the lease of every row this batch still holds; False when some row
        is no longer ours (the sweeper took it back)."""
        if time.monotonic() - self.renewed_at < self.renew_every:
            return True
        renewed = self.claimed.renew()
        self.renewed_at = time.monotonic()
        if renewed < held:
            log.warning("digest %s: claim %s lost %d row(s); stopping this batch",
                        self.digest_id, self.claimed.token[:8], held - renewed)
            return False
        return True

    def _mark_in_flight(self, delivery_id: int) -> bool:
        return self.claimed.mark_in_flight(delivery_id)

    def _record(self, row: Row, action: str, result: DeliveryResult | None,
                next_id: int | None) -> tuple[bool, bool]:
        """Write one row's result (and mark the next in flight): (recorded, next marked)."""
        now = utcnow()
        # An unreachable relay carried nothing: the row goes back without a relay.
        carried = result is not None and result.outcome is not Outcome.UNREACHABLE
        values = {"last_error": None, "relay": self.delivered_by if carried else None}
        self.delivered_by = None
        if action == "skip":
            status, values["last_error"] = DeliveryStatus.SKIPPED, "subscriber no longer active"
        elif action == "backoff":
            until = self.relay.backing_off(row.domain) or time.time()
            status = DeliveryStatus.DEFERRED
            values.update(tried=False, refund=True,
                          next_attempt_at=datetime.fromtimestamp(until, now.tzinfo),
                          last_error=f"not tried: {row.domain} is backing off after a 4xx")
        elif result.outcome is Outcome.SENT:
            status, values["sent_at"] = DeliveryStatus.SENT, now
        elif result.outcome is Outcome.UNREACHABLE:
            # Says nothing about the reader: back to pending, no attempt spent.
            status = DeliveryStatus.PENDING
            values.update(tried=False, refund=True, last_error=result.detail)
        elif result.outcome is Outcome.DEFERRED:
            self.relay.deferred(row.domain, str(row.subscriber_id), _reply_code(result),
                                result.enhanced)
            if row.attempts >= MAX_ATTEMPTS:
                status, values["last_error"] = DeliveryStatus.FAILED, result.detail
            else:
                delay = current_app.config["SEND_RETRY_DELAY"] * 2 ** (row.attempts - 1)
                status = DeliveryStatus.DEFERRED
                values.update(tried=False, next_attempt_at=now + timedelta(seconds=delay),
                              last_error=result.detail)
        elif result.outcome is Outcome.UNKNOWN:
            status, values["last_error"] = DeliveryStatus.UNKNOWN, result.detail
        else:  # FAILED or BOUNCED
            status, values["last_error"] = DeliveryStatus.FAILED, result.detail
            if result.outcome is Outcome.BOUNCED:  # only an active reader: as it was sent
                reader_status.change_on(
                    self.ledger, row.subscriber_id, reader_status.Change.BOUNCE,
                    reader_status.Origin(ConsentSource.BOUNCE),
                    Subscriber.status == SubscriberStatus.ACTIVE,
                    detail=f"refused when sent: {result.detail}"[:1000])
        if result is not None and result.outcome is not Outcome.SENT:
            log.warning("delivery %s %s: %s", row.delivery_id, status.value,
                        values["last_error"])
        return self.claimed.record(row.delivery_id, status, next_id, now, **values)


def _reply_code(result: DeliveryResult) -> int | None:
    code = getattr(result, "code", None)  # DeliveryResult.code, where the transport has it
    if code is None and result.detail[:3].isdigit():
        code = int(result.detail[:3])
    return code


# Who unsubscribed, and which domains other workers backed off, are re-read this often
# (seconds) while a batch runs, for the rows still to come: a reader who leaves
# mid-send is not mailed more than this after. (The claim read them fresh.)
STATUS_REFRESH_SECONDS = 0.5


@functools.cache
def _send_seconds(relay: str, outcome: Outcome):
    """The SMTP send-time histogram's series for a relay and outcome, looked up once."""
    return SMTP_SEND_SECONDS.labels(relay, outcome.value)


def _no_longer_active(ledger, subscriber_ids: list[int]) -> set[int]:
    return set(ledger.scalars(select(Subscriber.id).where(
        Subscriber.id.in_(subscriber_ids), Subscriber.status != SubscriberStatus.ACTIVE)))
