"""A reader's status: the one module that writes it, and the one writer of their history.

Every change of status is a row of TRANSITIONS, made by a conditional UPDATE
(``WHERE id = ? AND status IN (from-states)``, plus whatever the caller adds, such
as the nonce a confirmation link carries), so of concurrent callers exactly one
changes it. Each change rotates the token nonce (a link issued before it cannot
replay it) and appends the consent event in the same transaction. Events that
change no status (preferences, an editor's edit, a resent confirmation) are written
by ``record``, so a reader's history has one writer too. A change other systems hear
of (``Transition.webhook``) also owes its webhook event in the same transaction.
Nothing here commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, String, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.extensions import db
from newsletter.mail.addresses import EmailAddress
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    new_token_nonce,
    utcnow,
)
from newsletter.webhooks import events as webhook_events


@dataclass(frozen=True)
class Origin:
    """Where a request came from: kept in the consent log as evidence."""

    source: ConsentSource
    ip_address: str | None = None
    user_agent: str | None = None


class Change(enum.StrEnum):
    JOIN = "join"  # a subscribe request, an import or an editor without consent
    JOIN_CONFIRMED = "join_confirmed"  # an import or an editor with a consent statement
    CONFIRM = "confirm"  # the confirmation link
    RESUBSCRIBE = "resubscribe"  # "subscribe again" after unsubscribing oneself
    ASK_AGAIN = "ask_again"  # a subscribe request for an unsubscribed address
    UNSUBSCRIBE = "unsubscribe"  # the reader, an editor, the API, or a complaint
    BOUNCE = "bounce"  # a hard bounce, enough soft ones, or a 5xx when sent
    REACTIVATE = "reactivate"  # an owner says a bounced address works again
    ERASE = "erase"  # personal data gone; the row stays, suppressed


# What a transition does to a timestamp (absent: left as it is).
NOW, CLEARED, FIRST = "now", "cleared", "first"  # FIRST: now, unless it is set already


@dataclass(frozen=True)
class Transition:
    from_states: frozenset[SubscriberStatus]  # empty: the reader is new
    to: SubscriberStatus
    action: ConsentAction  # the consent event written with it
    confirmed_at: str | None = None
    unsubscribed_at: str | None = None
    webhook: str | None = None  # the webhook event it owes


_P, _A = SubscriberStatus.PENDING, SubscriberStatus.ACTIVE
_U, _B = SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED
_NEW: frozenset[SubscriberStatus] = frozenset()


def _t(from_states, to, action, **stamps) -> Transition:
    return Transition(frozenset(from_states), to, action, **stamps)


_CONFIRMED = webhook_events.SUBSCRIBER_CONFIRMED

# Every change of a reader's status; anything not here is refused. updated_at is
# set and token_nonce rotated by every one of them. An import's readers
# (``enter_many``) owe no webhook events: a CSV of thousands would flood receivers.
TRANSITIONS: dict[Change, Transition] = {
    # change                    from           to  consent event                    timestamps
    Change.JOIN:           _t(_NEW,          _P, ConsentAction.SUBSCRIBE_REQUESTED),
    Change.JOIN_CONFIRMED: _t(_NEW,          _A, ConsentAction.CONFIRMED, confirmed_at=NOW,
                              webhook=_CONFIRMED),
    Change.CONFIRM:        _t({_P},          _A, ConsentAction.CONFIRMED, confirmed_at=NOW,
                              unsubscribed_at=CLEARED, webhook=_CONFIRMED),
    Change.RESUBSCRIBE:    _t({_U},          _A, ConsentAction.CONFIRMED, confirmed_at=NOW,
                              unsubscribed_at=CLEARED, webhook=_CONFIRMED),
    Change.ASK_AGAIN:      _t({_U},          _P, ConsentAction.SUBSCRIBE_REQUESTED),
    Change.UNSUBSCRIBE:    _t({_P, _A, _B},  _U, ConsentAction.UNSUBSCRIBED, unsubscribed_at=NOW,
                              webhook=webhook_events.SUBSCRIBER_UNSUBSCRIBED),
    Change.BOUNCE:         _t({_P, _A},      _B, ConsentAction.BOUNCED,
                              webhook=webhook_events.SUBSCRIBER_BOUNCED),
    Change.REACTIVATE:     _t({_B},          _A, ConsentAction.REACTIVATED),
    Change.ERASE:          _t({_P, _A, _U, _B}, _U, ConsentAction.ERASED, unsubscribed_at=FIRST),
}


def _stamp(column, rule: str | None, now: datetime):
    return {NOW: now, CLEARED: None, FIRST: func.coalesce(column, now)}[rule]


def _update(subscriber_id: int, change: Change, conditions: tuple, values: dict):
    transition = TRANSITIONS[change]
    if not transition.from_states:
        raise ValueError(f"{change} makes a new reader: use enter()")
    now = utcnow()
    stamps = {name: _stamp(getattr(Subscriber, name), rule, now)
              for name in ("confirmed_at", "unsubscribed_at")
              if (rule := getattr(transition, name)) is not None}
    return (update(Subscriber)
            .where(Subscriber.id == subscriber_id,
                   Subscriber.status.in_(sorted(transition.from_states)), *conditions)
            .values(status=transition.to, token_nonce=new_token_nonce(), updated_at=now,
                    **stamps, **values))


def _event(subscriber_id: int, action: ConsentAction, origin: Origin, detail: str | None,
           at: datetime | None):
    """The consent event's INSERT; the address is read in the statement, so it is the
    one the reader has once the statements before it in the transaction are done."""
    return insert(ConsentEvent.__table__).values(
        subscriber_id=subscriber_id, action=action, source=ConsentSource(origin.source),
        email=select(Subscriber.email).where(Subscriber.id == subscriber_id).scalar_subquery(),
        ip_address=(origin.ip_address or None) and origin.ip_address[:45],
        user_agent=(origin.user_agent or None) and origin.user_agent[:512],
        detail=detail, created_at=at or utcnow())


def change(subscriber_id: int, change: Change, origin: Origin, *conditions,
           detail: str | None = None, at: datetime | None = None, **values) -> bool:
    """Make one transition in the session's transaction, with its consent event; True
    when this call changed the reader. ``conditions`` narrow the UPDATE (the nonce of
    a link); ``values`` are other columns written by the same UPDATE (erasure's)."""
    if db.session.execute(_update(subscriber_id, change, conditions, values)).rowcount != 1:
        return False
    transition = TRANSITIONS[change]
    db.session.execute(_event(subscriber_id, transition.action, origin, detail, at))
    if transition.webhook:
        webhook_events.record_subscriber(transition.webhook, subscriber_id, origin.source, detail)
    return True


def change_on(connection: Connection, subscriber_id: int, change: Change, origin: Origin,
              *conditions, detail: str | None = None) -> bool:
    """The same on a bare connection, for the send's hot path (its AUTOCOMMIT ledger):
    one UPDATE, and the consent event's INSERT when it changed; no ORM session."""
    if connection.execute(_update(subscriber_id, change, conditions, {})).rowcount != 1:
        return False
    transition = TRANSITIONS[change]
    connection.execute(_event(subscriber_id, transition.action, origin, detail, None))
    if transition.webhook:
        webhook_events.record_subscriber(transition.webhook, subscriber_id, origin.source,
                                         detail, connection=connection)
    return True


def record(subscriber_id: int, action: ConsentAction, origin: Origin,
           detail: str | None = None, at: datetime | None = None) -> None:
    """A consent event that goes with no change of status (preferences, an edit, a
    subscribe request for a reader who is pending or active already)."""
    db.session.execute(_event(subscriber_id, action, origin, detail, at))


def record_many(subscriber_ids: list[int], action: ConsentAction, origin: Origin,
                detail: str | None = None) -> None:
    """The same consent event for many readers (a policy's run): one INSERT ... SELECT,
    each with the address the reader has now."""
    now = utcnow()
    db.session.execute(insert(ConsentEvent.__table__).from_select(
        ["subscriber_id", "action", "source", "email", "detail", "created_at"],
        select(Subscriber.id, literal(action.value), literal(ConsentSource(origin.source).value),
               Subscriber.email, literal(detail, String), literal(now, UTCDateTime))
        .where(Subscriber.id.in_(subscriber_ids))))


def _new_values(transition: Transition, now: datetime) -> dict:
    return {"status": transition.to, "token_nonce": new_token_nonce(),
            "confirmed_at": now if transition.confirmed_at == NOW else None,
            "created_at": now, "updated_at": now}


def enter(address: EmailAddress, name: str | None, change: Change, origin: Origin, *,
          detail: str | None = None, at: datetime | None = None) -> Subscriber:
    """A new reader, pending (JOIN) or active (JOIN_CONFIRMED), with its consent event."""
    transition = TRANSITIONS[change]
    if transition.from_states:
        raise ValueError(f"{change} is not how a reader joins")
    subscriber = Subscriber(email=address.given, email_normalized=address.normalized,
                            name=name, **_new_values(transition, utcnow()))
    db.session.add(subscriber)
    db.session.flush()
    record(subscriber.id, transition.action, origin, detail, at)
    if transition.webhook:
        webhook_events.record_subscriber(transition.webhook, subscriber.id, origin.source, detail)
    return subscriber


def enter_many(readers: list[dict], change: Change, origin: Origin,
               detail: str | None = None) -> dict[str, int]:
    """New readers in bulk (an import's chunk): one multi-row INSERT for the readers
    ({"email", "email_normalized", "name"} each) and one for their consent events. An
    address that joined meanwhile is left out. Returns {email_normalized: id} of those
    added."""
    transition = TRANSITIONS[change]
    if transition.from_states or not readers:
        raise ValueError("enter_many takes new readers and a way to join")
    now = utcnow()
    dialect = db.session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    ids = dict(db.session.execute(
        upsert(Subscriber.__table__).on_conflict_do_nothing(index_elements=["email_normalized"])
        .returning(Subscriber.email_normalized, Subscriber.id),
        [{**reader, **_new_values(transition, now)} for reader in readers]).all())
    events = [{"subscriber_id": ids[reader["email_normalized"]], "action": transition.action,
               "source": ConsentSource(origin.source), "email": reader["email"],
               "detail": detail, "created_at": now}
              for reader in readers if reader["email_normalized"] in ids]
    if events:
        db.session.execute(insert(ConsentEvent.__table__), events)
    return ids
