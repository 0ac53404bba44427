"""The sunset policy: the one writer of a reader's place in it (``ReaderSunset``).

With per-reader tracking on and ``SUNSET_AFTER_ISSUES`` = N, a reader whose last N
delivered issues brought no human click gets a re-engagement mail with a "Keep me
subscribed" button; one who neither clicks nor presses it within
``SUNSET_GRACE_DAYS`` is paused, through the pause every reader can lift from the
preference centre. Mailbox providers judge a sender by how many of its readers
engage; mailing people who stopped reading lowers everyone's delivery.

Only issues whose copies carried the reader's id count (``Digest.readers_tracked``),
and the last N must all be such issues: a reader is never judged on mail whose
clicks could not be told apart. Only the stored verdict "human" counts as a click.

Every change is a row of TRANSITIONS made by a conditional UPDATE, so two runs of
the job at once change each reader once. Nothing here commits.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.content import topics
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.mail.tokens import TokenInvalid, read_keep_token
from newsletter.models import (
    Click,
    ClickKind,
    ConsentAction,
    ConsentSource,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestKind,
    MailTemplate,
    ReaderSunset,
    Subscriber,
    SubscriberStatus,
    SunsetState,
    Verdict,
    utcnow,
)
from newsletter.readers.status import Origin, record, record_many

# A pause with no end: the reader lifts it (preference centre, the keep button, a click).
SUNSET_PAUSE_UNTIL = datetime(9999, 12, 31, tzinfo=UTC)
CHUNK = 1000  # readers judged per transaction
POLICY = Origin(ConsentSource.SUNSET)

_A, _R, _P = SunsetState.ACTIVE, SunsetState.REENGAGING, SunsetState.PAUSED


class Move(enum.StrEnum):
    REENGAGE = "reengage"  # no human click in N issues: the mail is owed with it
    PAUSE = "pause"  # the grace passed without a human click
    KEEP = "keep"  # a human click, "keep me subscribed", or the reader resumed


TRANSITIONS: dict[Move, tuple[frozenset[SunsetState], SunsetState]] = {
    Move.REENGAGE: (frozenset({_A}), _R),
    Move.PAUSE: (frozenset({_R}), _P),
    Move.KEEP: (frozenset({_R, _P}), _A),
}


def enabled() -> bool:
    config = current_app.config
    return bool(config["SUNSET_AFTER_ISSUES"] and config["TRACK_CLICKS"]
                and config["TRACK_READERS"])


# --- the counting rule

@dataclass(frozen=True)
class Delivered:
    sent_at: datetime
    tracked: bool  # the issue's copies carried the reader's id


def is_idle(delivered: Iterable[Delivered], last_human_click: datetime | None,
            issues: int) -> bool:
    """True when the reader's last ``issues`` delivered issues were all tracked and no
    human click of theirs came at or after the first of them. ``delivered``: the
    issues (never sequence steps) delivered since the reader was last counted from."""
    if issues < 1:
        return False
    recent = sorted(delivered, key=lambda item: item.sent_at, reverse=True)[:issues]
    if len(recent) < issues or not all(item.tracked for item in recent):
        return False
    return last_human_click is None or last_human_click < recent[-1].sent_at


# --- reading

def state_of(subscriber_id: int) -> SunsetState:
    row = db.session.get(ReaderSunset, subscriber_id)
    return row.state if row is not None else _A


def is_sunset_pause(paused_until: datetime | None) -> bool:
    return paused_until is not None and paused_until >= SUNSET_PAUSE_UNTIL


def paused_by_sunset(subscriber: Subscriber) -> bool:
    """The reader's mail is stopped by the policy (shown on their pages)."""
    return is_sunset_pause(subscriber.paused_until) and state_of(subscriber.id) == _P


def _human_click_since(since):
    return exists().where(Click.subscriber_id == ReaderSunset.subscriber_id,
                          Click.kind == ClickKind.CLICK, Click.verdict == Verdict.HUMAN,
                          Click.at >= since)


def _move(move: Move, *conditions, now: datetime) -> list[int]:
    """One transition for every reader who meets ``conditions``; their ids."""
    sources, target = TRANSITIONS[move]
    return list(db.session.scalars(
        update(ReaderSunset)
        .where(ReaderSunset.state.in_(sorted(sources)), *conditions)
        .values(state=target, changed_at=now)
        .returning(ReaderSunset.subscriber_id)))


def _lift_pause(subscriber_id: int, origin: Origin, detail: str) -> None:
    """Resume a reader the policy paused, unless they chose another pause since."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is not None and is_sunset_pause(subscriber.paused_until):
        topics.pause_reader(subscriber, None)
        record(subscriber_id, ConsentAction.RESUMED, origin, detail)


# --- the daily run (the task body commits after each step)

def revive_clicked(now: datetime | None = None) -> list[int]:
    """Readers in the policy who clicked (as a person) since it moved them: active
    again, and resumed if it had paused them."""
    now = now or utcnow()
    revived = _move(Move.KEEP, ReaderSunset.state == _R,
                    _human_click_since(ReaderSunset.changed_at), now=now)
    paused = _move(Move.KEEP, ReaderSunset.state == _P,
                   _human_click_since(ReaderSunset.changed_at), now=now)
    for subscriber_id in paused:
        _lift_pause(subscriber_id, POLICY, "sunset: a click")
    return revived + paused


def pause_expired(now: datetime | None = None) -> list[int]:
    """Readers whose grace ended without a human click: paused."""
    now = now or utcnow()
    config = current_app.config
    grace = timedelta(days=config["SUNSET_GRACE_DAYS"])
    active_reader = exists().where(Subscriber.id == ReaderSunset.subscriber_id,
                                   Subscriber.status == SubscriberStatus.ACTIVE)
    paused = _move(Move.PAUSE, ReaderSunset.changed_at <= now - grace, active_reader,
                   ~_human_click_since(ReaderSunset.changed_at), now=now)
    detail = (f"sunset: no click in {config['SUNSET_AFTER_ISSUES']} issues nor in the "
              f"{config['SUNSET_GRACE_DAYS']} days after the re-engagement mail")
    for start in range(0, len(paused), CHUNK):
        chunk = paused[start:start + CHUNK]
        topics.pause_readers(chunk, SUNSET_PAUSE_UNTIL)
        record_many(chunk, ConsentAction.PAUSED, POLICY, detail)
    return paused


def reengage_idle(now: datetime | None = None) -> Iterator[list[int]]:
    """Judge the active, unpaused readers the policy has not moved, a chunk at a time;
    the idle ones are owed the re-engagement mail in the same transaction (sent as
    beat's owed-mail sweep publishes them). Yields each chunk's reengaged ids, for the
    caller to commit."""
    now = now or utcnow()
    issues = current_app.config["SUNSET_AFTER_ISSUES"]
    after = 0
    while True:
        rows = db.session.execute(
            select(Subscriber.id, ReaderSunset.changed_at)
            .outerjoin(ReaderSunset, ReaderSunset.subscriber_id == Subscriber.id)
            .where(Subscriber.id > after, Subscriber.status == SubscriberStatus.ACTIVE,
                   or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now),
                   or_(ReaderSunset.state.is_(None), ReaderSunset.state == _A))
            .order_by(Subscriber.id).limit(CHUNK)).all()
        if not rows:
            return
        after = rows[-1][0]
        since = dict(rows)
        idle = {subscriber_id: since[subscriber_id] for subscriber_id, delivered, clicked
                in _histories(since) if is_idle(delivered, clicked, issues)}
        reengaged = _reengage(idle, now)
        outbox.owe_later(reengaged, MailTemplate.REENGAGE)
        yield reengaged


def _histories(since: dict[int, datetime | None]):
    """(reader, their issues delivered since they were last counted from, their last
    human click) for each reader of ``since``."""
    ids = sorted(since)
    delivered: dict[int, list[Delivered]] = {subscriber_id: [] for subscriber_id in ids}
    for subscriber_id, sent_at, tracked in db.session.execute(
            select(Delivery.subscriber_id, Delivery.sent_at, Digest.readers_tracked)
            .join(Digest, Digest.id == Delivery.digest_id)
            .where(Delivery.subscriber_id.in_(ids), Delivery.status == DeliveryStatus.SENT,
                   Delivery.sent_at.is_not(None), Digest.kind == DigestKind.ISSUE)):
        start = since[subscriber_id]
        if start is None or sent_at > start:
            delivered[subscriber_id].append(Delivered(sent_at, bool(tracked)))
    clicks = dict(db.session.execute(
        select(Click.subscriber_id, func.max(Click.at))
        .where(Click.subscriber_id.in_(ids), Click.kind == ClickKind.CLICK,
               Click.verdict == Verdict.HUMAN)
        .group_by(Click.subscriber_id)).all())
    for subscriber_id in ids:
        yield subscriber_id, delivered[subscriber_id], clicks.get(subscriber_id)


def _reengage(idle: dict[int, datetime | None], now: datetime) -> list[int]:
    """ACTIVE -> REENGAGING for each reader still counted from the moment judged (a
    run that judged them on older facts changes nothing); the ids it moved."""
    if not idle:
        return []
    dialect = db.session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(upsert(ReaderSunset).on_conflict_do_nothing(
        index_elements=["subscriber_id"]),
        [{"subscriber_id": subscriber_id, "state": _A, "changed_at": None}
         for subscriber_id in idle])
    never_moved = [subscriber_id for subscriber_id, since in idle.items() if since is None]
    moved = _move(Move.REENGAGE, ReaderSunset.subscriber_id.in_(never_moved),
                  ReaderSunset.changed_at.is_(None), now=now) if never_moved else []
    for subscriber_id, since in idle.items():  # readers the policy moved back before
        if since is not None:
            moved += _move(Move.REENGAGE, ReaderSunset.subscriber_id == subscriber_id,
                           ReaderSunset.changed_at == since, now=now)
    return sorted(moved)


# --- the reader's answers

def reader_for_keep_link(token: str) -> Subscriber:
    """The reader a keep link names; raises TokenInvalid. The page shows the address of
    an active reader only (an erased one is unsubscribed)."""
    subscriber = db.session.get(Subscriber, read_keep_token(token))
    if subscriber is None:
        raise TokenInvalid("no such reader")
    return subscriber


def keep(subscriber_id: int, origin: Origin) -> bool:
    """"Keep me subscribed": back to active (and resumed, if the policy paused them).
    False when the reader is not subscribed; pressing it twice changes nothing more."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE:
        return False
    state = state_of(subscriber_id)
    if state != _A and _move(Move.KEEP, ReaderSunset.subscriber_id == subscriber_id,
                             ReaderSunset.state == state, now=utcnow()):
        if state == _P:
            _lift_pause(subscriber_id, origin, "sunset: keep me subscribed")
        else:
            record(subscriber_id, ConsentAction.PREFERENCES_CHANGED, origin,
                   "sunset: keep me subscribed")
    return True


def resumed(subscriber_id: int) -> None:
    """The reader lifted their pause themselves: the policy counts them afresh."""
    _move(Move.KEEP, ReaderSunset.subscriber_id == subscriber_id,
          ReaderSunset.state == _P, now=utcnow())


def forget_reader(subscriber_id: int) -> None:
    """An erased reader leaves the policy: how they read was about them."""
    db.session.execute(delete(ReaderSunset).where(ReaderSunset.subscriber_id == subscriber_id))
