"""Subscribe, double opt-in confirmation and unsubscribe.

A subscribe request is recorded as it came (``subscribe_requests``; this module
is the only one that writes those rows) and decided by a worker under a lock on
its canonical mailbox (``decide_request``). A reader's status changes only
through ``readers.status``: a conditional UPDATE, so concurrent requests make
exactly one change, with its consent event in the same transaction. Nothing here
commits: the view, command or task that calls it does.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import Engine, create_engine, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from newsletter import jobs
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.mail.addresses import EmailAddress, InvalidAddress, check_email, check_name
from newsletter.mail.tokens import (
    TokenInvalid,
    is_unsubscribe_key,
    read_confirm_token,
    read_legacy_unsubscribe_token,
)
from newsletter.models import (
    ConfirmationLock,
    ConfirmationSend,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    MailTemplate,
    RequestKind,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
    new_token_nonce,
    utcnow,
)
from newsletter.queue import send_task_now, wake, woken
from newsletter.readers import choices, privacy, status
from newsletter.readers.status import Change, Origin

log = logging.getLogger(__name__)

GATHER_SECONDS = 1.0  # also the wake-up window: see queue.wake
SWEEP_GRACE = timedelta(minutes=1)  # leave fresh requests to the task their wake-up started


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    ALREADY_ACTIVE = "already_active"


class LinkUsed(TokenInvalid):
    """A genuine confirmation link whose moment has passed (used, or superseded)."""


class SubscriberError(ValueError):
    """A change an editor asked for that cannot be made; the message says why."""


def find_subscriber(email_normalized: str) -> Subscriber | None:
    return db.session.scalar(
        select(Subscriber).where(Subscriber.email_normalized == email_normalized)
    )


def subscribe(email: object, name: object, origin: Origin, *, topics: object = None,
              cadence: object = None, timezone: object = None, language: object = None) -> None:
    """Record a request to subscribe; a worker decides what it leads to.

    The same work whatever the address's state (validate, one INSERT, commit,
    wake a worker), so neither the answer nor its timing tells who is subscribed.
    ``topics`` (a list of slugs, [] = everything), ``cadence``, ``timezone`` and
    ``language`` travel with the request (readers/choices.py). None: not asked.
    Returns nothing on purpose. Raises InvalidAddress, TopicError (ChoiceError).
    """
    _request(RequestKind.SUBSCRIBE, check_email(email), check_name(name), origin,
             choices.request_values(topics=topics, cadence=cadence, timezone=timezone,
                                    language=language))


def request_unsubscribe_link(email: object, origin: Origin) -> None:
    """"Send me my unsubscribe link" (from a bad unsubscribe link's page): recorded
    and decided like a subscribe request, with the same work, answer and per-mailbox
    limits, so it tells nobody who reads us. Raises InvalidAddress."""
    _request(RequestKind.UNSUBSCRIBE_LINK, check_email(email), None, origin,
             choices.request_values())


def request_address_change(subscriber_id: int, address: EmailAddress, origin: Origin) -> None:
    """A reader's new address (preference centre), recorded and decided like a subscribe
    request: the same work and answer whatever the address, the same mail limits."""
    _request(RequestKind.ADDRESS_CHANGE, address, None, origin, choices.request_values(),
             subscriber_id=subscriber_id)


def _request(kind: RequestKind, address: EmailAddress, display_name: str | None,
             origin: Origin, chosen: dict, *, subscriber_id: int | None = None) -> None:
    _record_request({
        "email": address.given, "name": display_name, "source": ConsentSource(origin.source).value,
        "ip_address": (origin.ip_address or None) and origin.ip_address[:45],
        "user_agent": (origin.user_agent or None) and origin.user_agent[:512],
        "requested_at": utcnow(), "kind": kind.value, **chosen,
        "subscriber_id": subscriber_id,
    })
    wake(jobs.PROCESS_SUBSCRIBE_REQUESTS, window=GATHER_SECONDS, first_look_after=GATHER_SECONDS)


# Built once: the hot path of the public edge runs it on every request.
_INSERT_REQUEST = insert(SubscribeRequest.__table__).inline()  # no RETURNING id
REQUEST_COLUMNS = ["email", "name", "source", "ip_address", "user_agent", "requested_at", "kind",
                   "topics", "cadence", "timezone", "language", "subscriber_id"]


def _record_request(values: dict) -> None:
    """One INSERT into subscribe_requests, committed. On PostgreSQL a prepared
    statement straight on psycopg (SQLAlchemy's per-call work would be a third of
    the request's cost); elsewhere through SQLAlchemy, whose types SQLite needs."""
    engine, sql = _requests_engine()
    if sql is None:
        with engine.begin() as connection:
            connection.execute(_INSERT_REQUEST, values)
        return
    connection = engine.raw_connection()  # autocommit: the INSERT is its own commit
    try:
        connection.driver_connection.execute(sql, values, prepare=True)
    finally:
        connection.close()  # back to the pool


def _requests_engine() -> tuple[Engine, str | None]:
    """Where subscribe requests are written, and the INSERT's SQL for psycopg (None:
    go through SQLAlchemy). On PostgreSQL, a small pool of its own in
    autocommit with ``synchronous_commit=off``: one round trip per request and no wait
    for the WAL flush. The price: a database crash within about half a second of a
    202 can lose that request (the reader asks again); everything else stays durable."""
    writer = current_app.extensions.get("subscribe_requests_engine")
    if writer is None:
        engine, sql = db.engine, None
        if engine.dialect.name == "postgresql":
            engine = create_engine(
                engine.url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=8,
                pool_pre_ping=True,  # a database restart leaves dead connections behind
                connect_args={"options": "-c synchronous_commit=off"})
            sql = str(_INSERT_REQUEST.compile(dialect=engine.dialect,
                                              column_keys=REQUEST_COLUMNS))
        writer = current_app.extensions["subscribe_requests_engine"] = (engine, sql)
    return writer


def pending_request_ids(gather_seconds: float = GATHER_SECONDS) -> Iterator[int]:
    """The recorded subscribe requests to decide, until none is left (the woken task's
    loop): the task decides each in a transaction of its own (``decide_request``)
    before it asks for the next.

    It starts a moment after it was woken: its work, which differs with the
    address's state, then never overlaps the answer to the request that woke it
    (a timing signal on a shared host), and it finds a batch instead of one row.
    Each copy of the task takes its batch in a random order, so copies running at
    once mostly work on different mailboxes; a request is decided once whatever
    the copies do (``decide_request``).
    """
    time.sleep(gather_seconds)
    while True:
        ids = _unprocessed_ids()
        if not ids:
            # a request committed from now on wakes another copy
            woken(jobs.PROCESS_SUBSCRIBE_REQUESTS)
            ids = _unprocessed_ids()
            if not ids:
                return
        random.shuffle(ids)
        yield from ids


def _unprocessed_ids(limit: int = 100) -> list[int]:
    ids = db.session.scalars(select(SubscribeRequest.id).order_by(SubscribeRequest.id)
                             .limit(limit)).all()
    db.session.rollback()  # hold no snapshot or lock between requests
    return list(ids)


@dataclass(frozen=True)
class Decision:
    decided: bool  # False: another copy decided it, or the row was unusable
    mail_id: int | None = None  # owed mail the task sends itself once this is committed


def decide_request(request_id: int) -> Decision:
    """Decide what a recorded subscribe request leads to (run by a worker, which
    commits; the mailbox's lock taken here is held until that commit).

    new or unsubscribed -> pending + a confirmation mail if the limits allow;
    pending -> maybe another confirmation; active, bounced -> nothing;
    erased (suppressed) -> nothing, and no record. A request for an unsubscribe
    link mails an active reader their link if the same limits allow; nobody else.
    Everything for one canonical mailbox happens under its lock, so concurrent
    workers cannot both pass a limit.
    """
    email = db.session.scalar(select(SubscribeRequest.email).where(
        SubscribeRequest.id == request_id))
    if email is None:
        return Decision(False)  # processed already, by another copy of the task
    try:
        address = check_email(email)
    except InvalidAddress:  # validated before it was stored; never retry a bad row
        db.session.execute(delete(SubscribeRequest).where(SubscribeRequest.id == request_id))
        return Decision(False)

    lock_key("mailbox:" + mailbox_key(address.canonical))  # held until commit
    # The claim: only one copy deletes the row. It names the address too, because
    # SQLite may give a decided request's id to a new one.
    request = db.session.execute(
        delete(SubscribeRequest)
        .where(SubscribeRequest.id == request_id, SubscribeRequest.email == email)
        .returning(SubscribeRequest.name, SubscribeRequest.source,
                   SubscribeRequest.ip_address, SubscribeRequest.user_agent,
                   SubscribeRequest.requested_at, SubscribeRequest.kind,
                   SubscribeRequest.topics, SubscribeRequest.cadence,
                   SubscribeRequest.timezone, SubscribeRequest.language,
                   SubscribeRequest.subscriber_id)).first()
    if request is None:
        db.session.rollback()  # another worker processed it while we waited
        return Decision(False)
    mail_id = None
    if privacy.is_suppressed(address.normalized):
        pass  # erased: keep no record, send nothing
    elif request.kind == RequestKind.UNSUBSCRIBE_LINK:
        subscriber = find_subscriber(address.normalized)
        if (subscriber is not None and subscriber.status == SubscriberStatus.ACTIVE
                and may_send_requested_mail(address)):
            mail_id = outbox.owe(subscriber.id, MailTemplate.UNSUBSCRIBE_LINK, publish=False)
    elif request.kind == RequestKind.ADDRESS_CHANGE:
        mail_id = _address_change_mail(address, request)
    else:
        subscriber = _subscriber_for_request(address, request)  # its name checked when stored
        if subscriber.status == SubscriberStatus.PENDING and may_send_requested_mail(address):
            mail_id = outbox.owe(subscriber.id, MailTemplate.CONFIRM, publish=False)
    return Decision(True, mail_id)


def _address_change_mail(address: EmailAddress, request) -> int | None:
    """An address change for a reader still active: logged, and a confirmation link
    mailed to the new address if nobody has it and the limits allow (the id of that
    owed mail). Asking again kills the link to an earlier new address."""
    subscriber = db.session.get(Subscriber, request.subscriber_id)
    if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE:
        return None
    status.record(subscriber.id, ConsentAction.ADDRESS_CHANGE_REQUESTED,
                  Origin(request.source, request.ip_address, request.user_agent),
                  address.given, at=request.requested_at)
    if find_subscriber(address.normalized) is not None or not may_send_requested_mail(address):
        return None
    subscriber.pending_email = address.given
    subscriber.token_nonce = new_token_nonce()
    return outbox.owe(subscriber.id, MailTemplate.CHANGE_ADDRESS, publish=False)


def _subscriber_for_request(address: EmailAddress, request) -> Subscriber:
    """The reader a subscribe request is for, pending if it was new or unsubscribed,
    and the request in their history; a reader not yet confirmed takes its choices."""
    origin = Origin(request.source, request.ip_address, request.user_agent)
    chosen = choices.of_request(request)
    detail = chosen.detail
    subscriber = find_subscriber(address.normalized)
    if subscriber is None:
        subscriber = status.enter(address, request.name, Change.JOIN, origin, detail=detail,
                                  at=request.requested_at)
    elif not status.change(subscriber.id, Change.ASK_AGAIN, origin, detail=detail,
                           at=request.requested_at):
        db.session.refresh(subscriber)  # as it is now: pending, active or bounced
        status.record(subscriber.id, ConsentAction.SUBSCRIBE_REQUESTED, origin,
                      detail if subscriber.status == SubscriberStatus.PENDING else None,
                      at=request.requested_at)
    db.session.refresh(subscriber)
    if subscriber.status == SubscriberStatus.PENDING:
        if request.name:  # never let a third party rename a confirmed reader
            subscriber.name = request.name
        choices.apply(subscriber, chosen)
    return subscriber


def mailbox_key(canonical: str) -> str:
    """A keyed hash of a canonical mailbox: limits are kept without the address in clear."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()


def lock_key(key: str) -> None:
    """Lock one row until commit: a row lock on PostgreSQL, the write lock on SQLite
    (this must be the transaction's first write, so later reads see the latest rows)."""
    dialect = db.session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    db.session.execute(upsert(ConfirmationLock).values(key=key, locked_at=now)
                       .on_conflict_do_update(index_elements=["key"], set_={"locked_at": now}))


def may_send_requested_mail(address: EmailAddress) -> bool:
    """A mail anyone can ask for (a confirmation, an unsubscribe link): at most
    CONFIRM_MAILS_PER_DAY per canonical mailbox, CONFIRM_MAIL_INTERVAL apart, and
    CONFIRM_MAILS_PER_DOMAIN_PER_HOUR per recipient domain, both kinds counted
    together; records the mail it allows. Called under the mailbox's lock.

    This stops anyone from using our forms to bomb a third party's inbox.
    """
    config = current_app.config
    key, domain = mailbox_key(address.canonical), address.canonical_domain
    now = utcnow()
    count, latest = db.session.execute(
        select(func.count(ConfirmationSend.id), func.max(ConfirmationSend.sent_at)).where(
            ConfirmationSend.mailbox_key == key,
            ConfirmationSend.sent_at > now - timedelta(hours=24))
    ).one()
    if count >= config["CONFIRM_MAILS_PER_DAY"]:
        return False
    if latest is not None and now - latest < timedelta(seconds=config["CONFIRM_MAIL_INTERVAL"]):
        return False
    lock_key("domain:" + domain)  # always after the mailbox's lock: no deadlock
    in_last_hour = db.session.scalar(select(func.count(ConfirmationSend.id)).where(
        ConfirmationSend.domain == domain, ConfirmationSend.sent_at > now - timedelta(hours=1)))
    if in_last_hour >= config["CONFIRM_MAILS_PER_DOMAIN_PER_HOUR"]:
        log.warning("confirmation mail to %s withheld: CONFIRM_MAILS_PER_DOMAIN_PER_HOUR (%s) "
                    "reached", domain, config["CONFIRM_MAILS_PER_DOMAIN_PER_HOUR"])
        return False
    db.session.add(ConfirmationSend(mailbox_key=key, domain=domain, sent_at=now))
    return True


def forget_old_limits() -> None:
    """Forget limit and lock rows older than a day (with the sweep, every minute)."""
    now = utcnow()
    db.session.execute(delete(ConfirmationSend).where(
        ConfirmationSend.sent_at < now - timedelta(hours=25)))
    db.session.execute(delete(ConfirmationLock).where(
        ConfirmationLock.locked_at < now - timedelta(hours=25)))


def enqueue_unprocessed() -> int:
    """Wake a worker for requests left undecided (Redis was down, a worker died).
    Returns how many requests are waiting. Writes nothing: call it with no lock held."""
    waiting = db.session.scalar(select(func.count()).select_from(SubscribeRequest).where(
        SubscribeRequest.requested_at < utcnow() - SWEEP_GRACE))
    if waiting:
        send_task_now(jobs.PROCESS_SUBSCRIBE_REQUESTS)
    return waiting


def _erased(subscriber: Subscriber) -> bool:
    return subscriber.email_normalized.startswith(privacy.ERASED_PREFIX)


def subscriber_for_confirm_token(token: str) -> Subscriber:
    """The pending subscriber a link confirms, for the GET page; raises TokenInvalid."""
    claim = read_confirm_token(token)
    subscriber = db.session.get(Subscriber, claim.subscriber_id)
    if subscriber is None or _erased(subscriber):
        raise TokenInvalid("unknown subscriber")
    if subscriber.status == SubscriberStatus.PENDING and subscriber.token_nonce != claim.nonce:
        raise LinkUsed("superseded")
    return subscriber


def confirm(token: str, origin: Origin) -> ConfirmOutcome:
    """Activate the subscriber a confirmation link names. Safe under double clicks."""
    claim = read_confirm_token(token)
    if status.change(claim.subscriber_id, Change.CONFIRM, origin,
                     Subscriber.token_nonce == claim.nonce):
        outbox.owe(claim.subscriber_id, MailTemplate.WELCOME)
        return ConfirmOutcome.CONFIRMED
    subscriber = db.session.get(Subscriber, claim.subscriber_id, populate_existing=True)
    if subscriber is None:
        raise TokenInvalid("unknown subscriber")
    if subscriber.status == SubscriberStatus.ACTIVE:
        return ConfirmOutcome.ALREADY_ACTIVE
    raise LinkUsed("used or superseded")


def subscriber_for_unsubscribe_token(token: str) -> Subscriber:
    """The reader an unsubscribe link names: by its random key, or (mails sent before
    the keys existed) by the old signed id. Erased readers' links are invalid."""
    if is_unsubscribe_key(token):
        subscriber = db.session.scalar(
            select(Subscriber).where(Subscriber.unsubscribe_key == token))
    else:
        subscriber = db.session.get(Subscriber, read_legacy_unsubscribe_token(token))
    if subscriber is None or _erased(subscriber):
        raise TokenInvalid("unknown subscriber")
    return subscriber


def unsubscribe(token: str, origin: Origin) -> Subscriber:
    """Unsubscribe at once; repeating it is harmless and logs nothing new."""
    return unsubscribe_subscriber(subscriber_for_unsubscribe_token(token).id, origin)


def unsubscribe_subscriber(subscriber_id: int, origin: Origin,
                           detail: str | None = None) -> Subscriber:
    """The same for a reader named by id (an editor's token, the workspace); raises
    TokenInvalid when there is no such reader or it was erased."""
    if db.session.get(Subscriber, subscriber_id) is None:
        raise TokenInvalid("unknown subscriber")
    status.change(subscriber_id, Change.UNSUBSCRIBE, origin, detail=detail)
    return db.session.get(Subscriber, subscriber_id, populate_existing=True)


class ResubscribeOutcome(enum.Enum):
    REACTIVATED = "reactivated"
    ALREADY_SUBSCRIBED = "already_subscribed"
    BOUNCED = "bounced"  # the address refused our mail: nothing can be sent to it
    NEEDS_CONFIRMATION = "needs_confirmation"  # a request recorded; a worker mails a link


# Unsubscribes the reader made themselves, from one of our mails. A spam complaint
# (feedback loop) is left out on purpose: the report may come from anyone who
# shares the mailbox or from the provider's filters, and mailing a complainer
# again without a fresh opt-in hurts every reader's delivery. An editor's or the
# API's unsubscribe is not the reader's act either.
SELF_UNSUBSCRIBE_SOURCES = (ConsentSource.LINK, ConsentSource.ONE_CLICK)
RESUBSCRIBED_DETAIL = "resubscribed from unsubscribe page"


def resubscribe(token: str, origin: Origin) -> ResubscribeOutcome:
    """"Subscribe again" from the unsubscribe page.

    The link proves the reader holds the mailbox (it came in one of our mails), so a
    reader who unsubscribed themselves is active again at once, with no confirmation
    mail; anyone else (a complaint, an editor's unsubscribe, a pending reader) goes
    through the confirmation mail like the subscribe form. No welcome mail: they
    know us already. Raises TokenInvalid.
    """
    subscriber = subscriber_for_unsubscribe_token(token)
    if subscriber.status == SubscriberStatus.ACTIVE:
        return ResubscribeOutcome.ALREADY_SUBSCRIBED
    if subscriber.status == SubscriberStatus.BOUNCED:
        return ResubscribeOutcome.BOUNCED
    # In the UPDATE itself, so a complaint recorded meanwhile is never overridden.
    last_unsubscribe_source = (
        select(ConsentEvent.source)
        .where(ConsentEvent.subscriber_id == subscriber.id,
               ConsentEvent.action == ConsentAction.UNSUBSCRIBED)
        .order_by(ConsentEvent.id.desc()).limit(1).scalar_subquery())
    if status.change(subscriber.id, Change.RESUBSCRIBE, origin,
                     last_unsubscribe_source.in_(SELF_UNSUBSCRIBE_SOURCES),
                     detail=RESUBSCRIBED_DETAIL):
        return ResubscribeOutcome.REACTIVATED
    # The refused UPDATE holds SQLite's write lock, and the request is written on
    # another connection: end this (unchanged) transaction first.
    db.session.rollback()
    subscribe(subscriber.email, subscriber.name, origin)
    return ResubscribeOutcome.NEEDS_CONFIRMATION


# --- by hand, in the workspace ---------------------------------------------------------------

def _check_free(address: EmailAddress) -> None:
    """Raise SubscriberError unless the address may join: not erased, not listed."""
    if privacy.is_suppressed(address.normalized):
        raise SubscriberError("This address was erased at the reader's request: it stays "
                              "suppressed and cannot be added again.")
    if find_subscriber(address.normalized) is not None:
        raise SubscriberError("This address is on the list already.")


def add_by_hand(email: object, name: object, consent: str | None,
                origin: Origin) -> tuple[Subscriber, bool]:
    """One reader added by an editor, under the import's rules: with a consent
    statement confirmed on the editor's word, without one pending with a confirmation
    mail (within the per-mailbox limits). Returns (reader, confirmation owed).
    Raises InvalidAddress or SubscriberError."""
    address, display_name = check_email(email), check_name(name)
    lock_key("mailbox:" + mailbox_key(address.canonical))  # held until commit
    try:
        _check_free(address)
    except SubscriberError:
        db.session.rollback()
        raise
    if consent:
        subscriber = status.enter(address, display_name, Change.JOIN_CONFIRMED, origin,
                                  detail=f"added as confirmed: {consent}")
        return subscriber, False
    subscriber = status.enter(address, display_name, Change.JOIN, origin,
                              detail="added by an editor")
    owed = may_send_requested_mail(address)
    if owed:
        outbox.owe(subscriber.id, MailTemplate.CONFIRM)
    return subscriber, owed


def edit_by_hand(subscriber_id: int, email: object, name: object, note: str | None,
                 origin: Origin) -> bool:
    """Correct a reader's address or name; False when nothing changed. A new address
    must be free as for a new reader, and old confirmation links stop working. The
    log says what changed, not the old values (erasure could not reach them there)."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or _erased(subscriber):
        raise SubscriberError("This reader was erased: there is nothing to edit.")
    address, display_name = check_email(email), check_name(name)
    changes = []
    if address.normalized != subscriber.email_normalized:
        _check_free(address)
        subscriber.email_normalized = address.normalized
        subscriber.token_nonce = new_token_nonce()
        changes.append("address changed")
    elif address.given != subscriber.email:
        changes.append("address spelling changed")
    subscriber.email = address.given
    if display_name != subscriber.name:
        subscriber.name = display_name
        changes.append("name changed")
    if not changes:
        db.session.rollback()
        return False
    try:
        status.record(subscriber.id, ConsentAction.EDITED, origin,
                      "; ".join(changes) + (f": {note}" if note else ""))
        db.session.flush()
    except IntegrityError:  # the new address subscribed meanwhile
        db.session.rollback()
        raise SubscriberError("This address is on the list already.") from None
    return True


def resend_confirmation(subscriber_id: int, origin: Origin) -> bool:
    """Another confirmation mail for a pending reader, counted against the same
    per-mailbox and per-domain limits as every confirmation. False: a limit says no.
    Raises SubscriberError when the reader is not pending."""
    row = db.session.execute(select(Subscriber.email, Subscriber.status).where(
        Subscriber.id == subscriber_id)).first()
    db.session.rollback()  # the lock must be the transaction's first write (see lock_key)
    address = check_email(row.email) if row and row.status == SubscriberStatus.PENDING else None
    if address is not None:
        lock_key("mailbox:" + mailbox_key(address.canonical))
    subscriber = db.session.get(Subscriber, subscriber_id, populate_existing=True)
    if address is None or subscriber.status != SubscriberStatus.PENDING:
        db.session.rollback()
        raise SubscriberError("Only a reader waiting to confirm can be sent a confirmation.")
    if not may_send_requested_mail(address):
        db.session.rollback()
        return False
    status.record(subscriber.id, ConsentAction.CONFIRMATION_RESENT, origin)
    outbox.owe(subscriber.id, MailTemplate.CONFIRM)
    return True
