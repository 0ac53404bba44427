"""The ledger: the one writer of delivery rows (one per issue and reader).

A row is written pending (or skipped, when the reader gets nothing) as a send
starts. A batch task *claims* rows under a fresh owner token (PostgreSQL: FOR
UPDATE SKIP LOCKED, so workers never wait on each other) and a lease. Every
later write about a claimed row says who claims it (``WHERE id = ? AND claim =
?``): a write that matches nothing means the sweeper gave the row to someone
else, so that batch stops at once. The sweeper takes back rows whose lease
expired or whose claim's heartbeat stopped (``delivery/heartbeat.py``: the worker
died); cancelling an issue skips the rows nobody claimed.

The writes of a running batch go through ``ClaimedBatch`` on an AUTOCOMMIT
connection: each result is its own transaction, committed together with marking
the next row in flight (one round trip per message).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.extensions import db
from newsletter.issues.lifecycle import is_status_sql
from newsletter.models import Delivery, DeliveryStatus, DigestStatus, UTCDateTime, utcnow

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, DEFERRED, FAILED, UNKNOWN, SKIPPED = (
    DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.SENT,
    DeliveryStatus.DEFERRED, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN,
    DeliveryStatus.SKIPPED)
EVERY_STATUS = frozenset(DeliveryStatus)
CANCELLED_ERROR = "issue cancelled by an editor"


class Move(enum.Enum):
    WRITE = "write"  # a new row, as the send starts
    CLAIM = "claim"  # leased to a batch under a new claim
    MARK_IN_FLIGHT = "mark in flight"  # the batch is about to send this row
    RENEW = "renew"  # the batch extends its lease
    RECORD = "record"  # the row's result
    RELEASE = "release"  # a stopped batch gives back a row it never tried
    TAKE_BACK = "take back"  # the lease expired or the heartbeat stopped: its worker is gone
    SKIP_UNSENT = "skip unsent"  # the issue was cancelled
    ERASE = "erase"  # the reader was erased: SMTP replies that may name them go


@dataclass(frozen=True)
class Transition:
    sources: frozenset[DeliveryStatus]  # empty: the row is new
    targets: frozenset[DeliveryStatus]
    owned: bool = False  # the write names its claim (WHERE id = ? AND claim = ?)


# The allowed transitions of a ledger row.
TRANSITIONS: dict[Move, Transition] = {
    Move.WRITE: Transition(frozenset(), frozenset({PENDING, SKIPPED})),
    # Pending rows, then deferred ones whose retry is due.
    Move.CLAIM: Transition(frozenset({PENDING, DEFERRED}), frozenset({SENDING})),
    Move.MARK_IN_FLIGHT: Transition(frozenset({SENDING}), frozenset({SENDING}), owned=True),
    Move.RENEW: Transition(frozenset({SENDING}), frozenset({SENDING}), owned=True),
    # Pending: the relay was unreachable, which says nothing about the reader.
    Move.RECORD: Transition(frozenset({SENDING}),
                            frozenset({SENT, DEFERRED, FAILED, UNKNOWN, SKIPPED, PENDING}),
                            owned=True),
    # Skipped when the issue was cancelled meanwhile.
    Move.RELEASE: Transition(frozenset({SENDING}), frozenset({PENDING, SKIPPED}), owned=True),
    # Unknown: it was in flight on a lost worker after being resent once already.
    Move.TAKE_BACK: Transition(frozenset({SENDING}), frozenset({PENDING, UNKNOWN})),
    Move.SKIP_UNSENT: Transition(frozenset({PENDING, DEFERRED}), frozenset({SKIPPED})),
    Move.ERASE: Transition(EVERY_STATUS, EVERY_STATUS),  # the status stays as it is
}


def _sources(what: Move):
    """The column condition of a move's allowed source statuses (ORM statements)."""
    sources = TRANSITIONS[what].sources
    return Delivery.status.in_(sources) if len(sources) > 1 else Delivery.status == next(
        iter(sources))


def _sources_sql(what: Move) -> str:
    """The same condition as SQL text, for the hot statements."""
    values = sorted(status.value for status in TRANSITIONS[what].sources)
    if len(values) == 1:
        return f"status = '{values[0]}'"
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def add_rows(rows: list[dict], *, skip_existing: bool = False) -> None:
    """Insert a chunk of new rows (each pending or skipped), in the caller's transaction.
    ``skip_existing``: a reader who already has a row of that issue keeps it as it is
    (a sequence step is never written twice for a reader)."""
    allowed = TRANSITIONS[Move.WRITE].targets
    if any(row["status"] not in allowed for row in rows):
        raise ValueError("a new ledger row is pending or skipped")
    statement = insert(Delivery)
    if skip_existing:
        dialect_insert = (postgresql.insert if db.session.get_bind().dialect.name == "postgresql"
                          else sqlite.insert)
        statement = dialect_insert(Delivery).on_conflict_do_nothing(
            index_elements=["digest_id", "subscriber_id"])
    db.session.execute(statement, rows)


def refresh_statistics() -> None:
    """After a send's rows are written (PostgreSQL): the planner's statistics are taken
    from the table as it is now, so a claim on a million pending rows is planned as an
    index walk in id order, not a sort of every pending row for a few expected ones.
    In the caller's transaction; ANALYZE counts that transaction's own new rows."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("ANALYZE deliveries"))


def due_wave(now: datetime):
    """A row whose wave has come (issues sent in reader time, issues/waves.py)."""
    return or_(Delivery.not_before.is_(None), Delivery.not_before <= now)


def new_claim() -> str:
    """A fresh owner token (its heartbeat starts before any row is claimed under it)."""
    return secrets.token_hex(16)


def claim_and_commit(digest_id: int, size: int, token: str, after: int = 0) -> list[int]:
    """Lease up to ``size`` rows under the owner token ``token``: pending ones first
    (those past id ``after`` first, then any), then deferred ones now due. Returns the
    row ids.

    ``after``: the highest id this process claimed of the issue before. Every claim
    takes the lowest pending ids, so the rows below it are all taken; starting the
    walk there keeps a claim as cheap late in a million-row send as early, whichever
    index PostgreSQL picks (with statistics taken when every row was pending it walks
    the primary key, past every row sent so far). A row given back below it is
    still claimed, by the second query, once nothing above it is left.

    Commits (a deliberate early commit): the rows must be visibly claimed, by every
    worker and the sweeper, before any of their mail goes out. One condition per
    query, so each is a seek on the (digest_id, status) index rather than a scan
    past the rows already sent.
    """
    now = utcnow()
    lease = timedelta(seconds=current_app.config["SEND_LEASE"])
    for condition in (and_(Delivery.status == PENDING, Delivery.id > after, due_wave(now)),
                      and_(Delivery.status == PENDING, due_wave(now)),
                      and_(Delivery.status == DEFERRED, Delivery.next_attempt_at <= now)):
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
            .values(status=SENDING, claim=token, lease_until=now + lease,
                    attempted_at=None, attempts=Delivery.attempts + 1)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        db.session.commit()
        if ids:
            return sorted(ids)
    return []


def claims_held(digest_id: int) -> set[str]:
    """The claims that hold rows of this issue now."""
    return set(db.session.scalars(select(Delivery.claim).distinct().where(
        Delivery.digest_id == digest_id, _sources(Move.TAKE_BACK))))


def take_back(digest_id: int, now: datetime, dead_claims: Collection[str] = ()) -> int:
    """Rows whose worker is gone: their lease expired, or their claim is one of
    ``dead_claims`` (its heartbeat stopped). A holder that only stalled finds its claim
    no longer matches and stops at its next write. Returns how many rows came back."""
    gone = Delivery.lease_until < now
    if dead_claims:
        gone = gone | Delivery.claim.in_(sorted(dead_claims))
    expired = (Delivery.digest_id == digest_id, _sources(Move.TAKE_BACK), gone)
    in_flight = Delivery.attempted_at.is_not(None)
    # Resent once already and cut by a crash again: maybe delivered twice; stop here.
    lost_twice = db.session.execute(
        update(Delivery).where(*expired, in_flight, Delivery.resent_after_crash.is_(True))
        .values(status=UNKNOWN, lease_until=None, claim=None,
                last_error="worker lost twice while sending this message")).rowcount
    # The message in flight when its worker died was most likely not accepted (the
    # connection died with the worker): resend it once, with the same Message-ID.
    resent = db.session.execute(
        update(Delivery).where(*expired, in_flight)
        .values(status=PENDING, lease_until=None, claim=None,
                attempted_at=None, resent_after_crash=True,
                last_error="worker lost while sending this message; resent once")).rowcount
    if resent:
        log.warning("digest %s: %d message(s) in flight on a lost worker will be resent "
                    "once (same Message-ID)", digest_id, resent)
    # Claimed but never tried: back to pending, no attempt spent.
    untried = db.session.execute(
        update(Delivery).where(*expired)
        .values(status=PENDING, lease_until=None, claim=None,
                attempts=Delivery.attempts - 1)).rowcount
    return lost_twice + resent + untried


def skip_unsent(digest_id: int) -> None:
    """The issue was cancelled: rows nobody holds are skipped (rows a running batch
    holds follow when it releases them)."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.digest_id == digest_id, _sources(Move.SKIP_UNSENT))
        .values(status=SKIPPED, last_error=CANCELLED_ERROR))


def erase_errors(subscriber_id: int) -> None:
    """SMTP replies quote the address ("550 <ada@example.com>: no such user"): an
    erased reader's go; the rows stay (the ledger's counts need them)."""
    db.session.execute(update(Delivery).where(Delivery.subscriber_id == subscriber_id)
                       .values(last_error=None))


# The hot statements: written as SQL once, the status conditions from the table.
_STILL_SENDING = is_status_sql(DigestStatus.SENDING)
_CANCELLED = is_status_sql(DigestStatus.CANCELLED)

# Marks one row in flight, only while we own it and the issue is still sending.
MARK_IN_FLIGHT = text(f"""
UPDATE deliveries SET attempted_at = :now, lease_until = :lease
WHERE id = :id AND claim = :claim AND {_sources_sql(Move.MARK_IN_FLIGHT)} AND {_STILL_SENDING}
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
  attempted_at = CASE WHEN id = :id THEN :attempted_at ELSE :now END,
  relay = CASE WHEN id = :id THEN COALESCE(:relay, relay) ELSE relay END
WHERE id IN (:id, :next_id) AND claim = :claim AND {_sources_sql(Move.RECORD)}
  AND (id = :id OR {_STILL_SENDING})
RETURNING id
""").bindparams(*(bindparam(name, type_=UTCDateTime) for name in
                  ("sent_at", "next_attempt_at", "attempted_at", "now", "lease")))

RENEW_LEASE = text(f"""
UPDATE deliveries SET lease_until = :lease WHERE claim = :claim AND {_sources_sql(Move.RENEW)}
""").bindparams(bindparam("lease", type_=UTCDateTime))

# Rows of a cancelled issue become skipped in the same statement, so nobody ever
# sees them pending under a cancelled issue.
RELEASE = text(f"""
UPDATE deliveries SET
  status = CASE WHEN {_CANCELLED} THEN '{SKIPPED.value}' ELSE '{PENDING.value}' END,
  last_error = CASE WHEN {_CANCELLED} THEN '{CANCELLED_ERROR}' ELSE last_error END,
  lease_until = NULL, attempted_at = NULL, attempts = attempts - 1
WHERE id IN :ids AND claim = :claim AND {_sources_sql(Move.RELEASE)}
""").bindparams(bindparam("ids", expanding=True))

RESULTS = TRANSITIONS[Move.RECORD].targets


class HotStatement:
    """The statement run once per message, straight to the driver: SQLAlchemy's
    per-call work (cache key, parameters, result objects) was a third of a message's
    cost. Compiled once per batch; the values still pass through the columns' bind
    processors (UTCDateTime's), in the driver's parameter style. On PostgreSQL
    psycopg keeps it as a prepared statement."""

    def __init__(self, connection, statement):
        compiled = statement.compile(dialect=connection.dialect)
        self.sql = compiled.string
        self.processors = dict(compiled._bind_processors)
        self.positions = compiled.positiontup  # None for named parameter styles
        self.options = {"prepare": True} if connection.dialect.name == "postgresql" else {}
        self.cursor = connection.connection.driver_connection.cursor()

    def ids(self, values: dict) -> list[int]:
        # One moment is often several values (now, attempted_at, sent_at): processed
        # once (a processor's result depends on the value alone).
        processed: dict = {}
        for name, process in self.processors.items():
            value = values[name]
            if value not in processed:
                processed[value] = process(value)
            values[name] = processed[value]
        parameters = (values if self.positions is None
                      else tuple(values[name] for name in self.positions))
        self.cursor.execute(self.sql, parameters, **self.options)
        return [row[0] for row in self.cursor.fetchall()]


@contextlib.contextmanager
def batch_connection() -> Iterator:
    """An AUTOCOMMIT connection for a batch's writes: each statement commits alone.

    Each commit waits for the WAL flush (no ``synchronous_commit = off`` here): a
    database crash must not lose a result the relay already answered, or the row
    would come back looking never tried and its reader get a second, unflagged copy.
    What a crash can cut is only the message in flight, resent once and flagged."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


class ClaimedBatch:
    """The writes about the rows one claim holds, each naming the claim: a write
    that matches nothing means the row is no longer ours."""

    def __init__(self, connection, digest_id: int, token: str, lease: timedelta):
        self.connection, self.digest_id, self.token, self.lease = (
            connection, digest_id, token, lease)
        self.record_statement = HotStatement(connection, RECORD_RESULT)

    def mark_in_flight(self, delivery_id: int) -> bool:
        now = utcnow()
        return self.connection.execute(MARK_IN_FLIGHT, {
            "id": delivery_id, "claim": self.token, "digest_id": self.digest_id,
            "now": now, "lease": now + self.lease}).rowcount == 1

    def record(self, delivery_id: int, status: DeliveryStatus, next_id: int | None,
               now: datetime, *, sent_at: datetime | None = None,
               next_attempt_at: datetime | None = None, tried: bool = True,
               last_error: str | None = None, refund: bool = False,
               relay: str | None = None) -> tuple[bool, bool]:
        """Write one row's result and mark ``next_id`` in flight: (recorded, next marked).
        ``tried``: an attempt was made (else ``attempted_at`` is cleared); ``refund``: the
        attempt the claim counted is given back; ``relay``: the relay that answered."""
        if status not in RESULTS:
            raise ValueError(f"a claimed row cannot become {status}")
        written = self.record_statement.ids({
            "id": delivery_id, "next_id": next_id if next_id is not None else -1,
            "claim": self.token, "digest_id": self.digest_id, "now": now,
            "lease": now + self.lease, "status": status.value, "sent_at": sent_at,
            "next_attempt_at": next_attempt_at, "attempted_at": now if tried else None,
            "last_error": last_error, "refund": 1 if refund else 0, "relay": relay})
        return delivery_id in written, next_id in written

    def renew(self) -> int:
        """Extend the lease of every row the claim holds; returns how many it holds."""
        return self.connection.execute(RENEW_LEASE, {
            "claim": self.token, "lease": utcnow() + self.lease}).rowcount

    def release(self, delivery_ids: list[int]) -> None:
        """Give back the rows a stopped batch never tried (no attempt spent)."""
        if delivery_ids:
            self.connection.execute(RELEASE, {"ids": delivery_ids, "claim": self.token,
                                              "digest_id": self.digest_id})
