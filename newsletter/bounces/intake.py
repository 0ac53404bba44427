"""Bounces and complaints: one door for every report, whatever way it came in.

The SMTP receiver, the IMAP poller and the provider webhooks all end here.
Each report becomes one ``bounce_events`` row (its bytes kept in
``bounce_messages``), and the policy is applied in the same transaction:

- hard bounce -> the reader is ``bounced`` at once;
- soft bounces are scored: BOUNCE_SOFT_LIMIT of them spanning at least
  BOUNCE_SOFT_DAYS, with no successful delivery in between -> ``bounced``;
- complaint -> unsubscribed, with a consent-log entry naming the feedback loop.

A report is believed only if it carries a VERP token we signed that names a
delivery we made, to the address the report names. Anything else (forged,
unsigned, about an address we never mailed, not understood) is parked as an
``unparsed`` event with the reason: visible to owners, changing no reader.

Anyone can mail the bounce address, so only a believed report keeps all its
bytes (and only the first one per delivery); every other report keeps its first
BOUNCE_PARKED_KEEP_BYTES, and parked reports go after BOUNCE_PARKED_RETENTION_DAYS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.bounces import dsn
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.mail import verp
from newsletter.models import (
    BounceEvent,
    BounceKind,
    BounceMessage,
    BounceSource,
    ConsentSource,
    Delivery,
    DeliveryStatus,
    Editor,
    MailTemplate,
    OutboxMail,
    Subscriber,
    utcnow,
)
from newsletter.readers import status
from newsletter.webhooks import events as webhook_events

log = logging.getLogger(__name__)


class TooLarge(ValueError):
    pass


# --- reports in -------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    event_ids: list[int]
    summary: str  # one line for a log, a CLI or an SMTP reply


def receive_mail(raw: bytes, source: BounceSource, envelope_to: list[str] | None = None
                 ) -> Outcome:
    """Record one mailed report (DSN, ARF, anything sent to the bounce address), in the
    caller's transaction: the report is recorded once that commits."""
    limit = current_app.config["BOUNCE_MAX_SIZE"]
    fingerprint = dsn.fingerprint_of(raw)
    if db.session.scalar(select(BounceEvent.id).where(
            BounceEvent.dedup_key == f"mail:{fingerprint}")) is not None:
        return Outcome([], "duplicate: this report was recorded before")
    stored = BounceMessage(source=source, size=len(raw), raw=_beginning(raw),
                           envelope_to=", ".join(envelope_to or [])[:320] or None)
    db.session.add(stored)
    db.session.flush()
    if len(raw) > limit:
        return _park(stored, source, f"too large: {len(raw)} bytes (limit {limit})",
                     dedup=f"mail:{fingerprint}")
    report = dsn.parse(raw, envelope_to or [], verp.token_in_address)
    if report.kind is BounceKind.UNPARSED:
        return _park(stored, source, report.problem, dedup=f"mail:{report.fingerprint}",
                     provider=report.provider)
    ref, problem = _verified_ref(report.tokens)
    if ref is None:
        return _park(stored, source, problem, dedup=f"mail:{report.fingerprint}",
                     provider=report.provider)
    subscriber = subscriber_for(ref)
    if subscriber is None:
        return _park(stored, source, f"the token names {ref.describe()}, which we never sent",
                     dedup=f"mail:{report.fingerprint}", provider=report.provider)
    named = {failure.address for failure in report.failures if failure.address}
    if named and subscriber.email.lower() not in named and (
            subscriber.email_normalized not in named):
        return _park(stored, source,
                     f"the report names {', '.join(sorted(named))[:200]}, but {ref.describe()} "
                     "went to another address", dedup=f"mail:{report.fingerprint}",
                     provider=report.provider)
    failure = next((f for f in report.failures if f.address in
                    (subscriber.email.lower(), subscriber.email_normalized)), None)
    first_for_delivery = not _kept_before(ref)
    event = record(report.kind, source, subscriber.id, ref=ref,
                   recipient=subscriber.email, provider=report.provider,
                   status_code=failure.status_code if failure else None,
                   reason=(failure.reason if failure and failure.reason else report.reason),
                   raw_message_id=stored.id, dedup_key=f"mail:{report.fingerprint}")
    if event is None:
        _discard(stored)
        return Outcome([], "duplicate: this report was recorded before")
    if first_for_delivery:
        stored.raw = raw
    return Outcome([event.id], f"{event.kind.value}: {event.action}")


def _beginning(raw: bytes) -> bytes:
    """What a report keeps until it is believed: enough for an owner to read its headers."""
    return raw[:current_app.config["BOUNCE_PARKED_KEEP_BYTES"]]


def _kept_before(ref: verp.DeliveryRef) -> bool:
    """Whether a report about this delivery was kept already: a reader holding their own
    VERP token could otherwise have us store megabytes per mail they send us."""
    if ref.outbox_mail_id is not None:
        same = BounceEvent.outbox_mail_id == ref.outbox_mail_id
    else:
        same = and_(BounceEvent.digest_id == ref.digest_id,
                    BounceEvent.subscriber_id == ref.subscriber_id)
    return db.session.scalar(select(BounceEvent.id).where(
        same, BounceEvent.raw_message_id.is_not(None)).limit(1)) is not None


def _discard(stored: BounceMessage | None) -> None:
    """A duplicate report's bytes are not kept a second time."""
    if stored is not None:
        db.session.delete(stored)


def receive_oversized(size: int, source: BounceSource) -> Outcome:
    """A report too large to download: parked with its size, none of its bytes."""
    stored = BounceMessage(source=source, size=size, raw=None)
    db.session.add(stored)
    db.session.flush()
    limit = current_app.config["BOUNCE_MAX_SIZE"]
    return _park(stored, source, f"too large: {size} bytes (limit {limit})", dedup=None)


def _verified_ref(tokens: list[str]) -> tuple[verp.DeliveryRef | None, str]:
    if not tokens:
        return None, "no VERP token: not a reply to a message we sent (or forged)"
    for token in tokens:
        try:
            return verp.read_token(token), ""
        except verp.BadToken:
            continue
    return None, "forged or damaged VERP token: bad signature"


def subscriber_for(ref: verp.DeliveryRef) -> Subscriber | None:
    if ref.outbox_mail_id is not None:
        mail = db.session.get(OutboxMail, ref.outbox_mail_id)
        if mail is None or mail.template == MailTemplate.CHANGE_ADDRESS:
            return None  # a new address that bounced is not the reader's live one
        return db.session.get(Subscriber, mail.subscriber_id)
    sent = db.session.scalar(select(Delivery.id).where(
        Delivery.digest_id == ref.digest_id, Delivery.subscriber_id == ref.subscriber_id,
        Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.UNKNOWN,
                             DeliveryStatus.SENDING])))
    return db.session.get(Subscriber, ref.subscriber_id) if sent else None


def _park(stored: BounceMessage | None, source: BounceSource, problem: str, *,
          dedup: str | None, provider: str | None = None,
          action: str = "parked: changed no reader") -> Outcome:
    """Keep a report we do not act on, with the reason; logged once, no reader changed."""
    event = _add_event(kind=BounceKind.UNPARSED, source=source, provider=provider,
                       reason=problem[:2000], action=action,
                       raw_message_id=stored.id if stored else None, dedup_key=dedup)
    if event is None:
        _discard(stored)
        return Outcome([], "duplicate: this report was recorded before")
    log.warning("bounce report parked (%s): %s", source.value, problem)
    return Outcome([event.id], f"parked: {problem}")


def park_webhook(problem: str, provider: str, dedup: str | None = None,
                 action: str = "parked: changed no reader") -> Outcome:
    return _park(None, BounceSource.WEBHOOK, problem, dedup=dedup, provider=provider,
                 action=action)


def _add_event(**values) -> BounceEvent | None:
    """Insert a bounce event; None when its dedup_key was recorded before. ON CONFLICT
    DO NOTHING rather than catching the IntegrityError: the caller's transaction, which
    may hold other reports (a webhook's batch), stays usable."""
    dialect = db.session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    event_id = db.session.scalar(
        upsert(BounceEvent.__table__).values(**values)
        .on_conflict_do_nothing(index_elements=["dedup_key"]).returning(BounceEvent.id))
    return None if event_id is None else db.session.get(BounceEvent, event_id)


# --- the policy -------------------------------------------------------------------

def record(kind: BounceKind, source: BounceSource, subscriber_id: int, *,
           ref: verp.DeliveryRef | None = None, recipient: str | None = None,
           provider: str | None = None, status_code: str | None = None, reason: str = "",
           raw_message_id: int | None = None, dedup_key: str | None = None
           ) -> BounceEvent | None:
    """Record one believed event and apply the policy (in the caller's transaction);
    None when it is a duplicate."""
    ref = ref or verp.DeliveryRef(subscriber_id=subscriber_id)
    event = _add_event(kind=kind, source=source, provider=(provider or None) and provider[:64],
                       subscriber_id=subscriber_id, digest_id=ref.digest_id,
                       outbox_mail_id=ref.outbox_mail_id, recipient=(recipient or "")[:254],
                       status_code=status_code, reason=(reason or kind.value)[:2000],
                       raw_message_id=raw_message_id, dedup_key=dedup_key)
    if event is None:
        return None
    if kind is BounceKind.HARD:
        event.action = _mark_bounced(subscriber_id, "hard bounce")
    elif kind is BounceKind.SOFT:
        event.action = _score_soft(subscriber_id, event, ref)
    elif kind is BounceKind.COMPLAINT:
        event.action = _complaint(subscriber_id, provider)
        webhook_events.record_subscriber(webhook_events.SUBSCRIBER_COMPLAINED, subscriber_id,
                                         source, f"via {provider or 'an unnamed'} feedback loop")
    db.session.flush()
    log.info("bounce event %s for subscriber %s: %s, %s", event.id, subscriber_id,
             kind.value, event.action)
    if ref.digest_id is not None:
        from newsletter.delivery import guard

        guard.check_issue(ref.digest_id)
    return event


def _mark_bounced(subscriber_id: int, why: str) -> str:
    if not status.change(subscriber_id, status.Change.BOUNCE,
                         status.Origin(ConsentSource.BOUNCE), detail=why):
        return "reader was not active: unchanged"
    return f"reader marked bounced ({why})"


def _score_soft(subscriber_id: int, event: BounceEvent, ref: verp.DeliveryRef) -> str:
    """N soft bounces across at least D days, with no good delivery in between."""
    config = current_app.config
    limit, days = config["BOUNCE_SOFT_LIMIT"], config["BOUNCE_SOFT_DAYS"]
    since = _streak_start(subscriber_id, ref)
    # A bounce counts from when its message was sent (reports can arrive late and
    # out of order); one without a known delivery, from when it arrived.
    moment = func.coalesce(Delivery.sent_at, BounceEvent.created_at)
    streak = select(moment).select_from(BounceEvent).outerjoin(Delivery, and_(
        Delivery.digest_id == BounceEvent.digest_id,
        Delivery.subscriber_id == BounceEvent.subscriber_id)).where(
        BounceEvent.subscriber_id == subscriber_id, BounceEvent.kind == BounceKind.SOFT)
    if since is not None:
        streak = streak.where(moment > since)
    moments = sorted(_aware(m) for m in db.session.scalars(streak))
    score = f"soft bounce {len(moments)} of {limit}"
    if len(moments) >= limit and moments[-1] - moments[0] >= timedelta(days=days):
        return _mark_bounced(subscriber_id, f"{score} over {(moments[-1] - moments[0]).days} "
                                            "days")
    return score + (f" (and at least {days} days apart)" if len(moments) >= limit else "")


def _aware(moment):
    # coalesce() loses the column type: SQLite hands back a string or a naive datetime.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _streak_start(subscriber_id: int, ref: verp.DeliveryRef):
    """When the current run of soft bounces started to count: the last delivery that
    did not bounce (sent before the bounced one), or the last reactivation."""
    bounced_later = exists().where(
        BounceEvent.digest_id == Delivery.digest_id,
        BounceEvent.subscriber_id == Delivery.subscriber_id,
        BounceEvent.kind.in_([BounceKind.SOFT, BounceKind.HARD]))
    good = select(func.max(Delivery.sent_at)).where(
        Delivery.subscriber_id == subscriber_id, Delivery.status == DeliveryStatus.SENT,
        ~bounced_later)
    if ref.digest_id is not None:
        this_sent = select(Delivery.sent_at).where(
            Delivery.digest_id == ref.digest_id, Delivery.subscriber_id == subscriber_id
        ).scalar_subquery()
        good = good.where(Delivery.sent_at < this_sent)
    reactivated = select(func.max(BounceEvent.created_at)).where(
        BounceEvent.subscriber_id == subscriber_id, BounceEvent.kind == BounceKind.REACTIVATED)
    moments = [m for m in (db.session.scalar(good), db.session.scalar(reactivated)) if m]
    return max(moments) if moments else None


def _complaint(subscriber_id: int, provider: str | None) -> str:
    if not status.change(subscriber_id, status.Change.UNSUBSCRIBE,
                         status.Origin(ConsentSource.FEEDBACK_LOOP),
                         detail=f"complaint via {provider or 'an unnamed'} feedback loop"):
        return "reader was already unsubscribed: unchanged"
    return "reader unsubscribed (complaint)"


def reactivate(subscriber_id: int, editor: Editor) -> bool:
    """An owner says a bounced address works again (e.g. the reader wrote in)."""
    if not accounts.is_owner(editor):
        return False
    changed = status.change(subscriber_id, status.Change.REACTIVATE,
                            status.Origin(ConsentSource.EDITOR),
                            detail=f"bounced address reactivated by {editor.email}")
    if changed:
        db.session.add(BounceEvent(kind=BounceKind.REACTIVATED, source=BounceSource.EDITOR,
                                   subscriber_id=subscriber_id,
                                   reason=f"reactivated by {editor.email}",
                                   action="reader active again; soft-bounce score reset"))
    return changed


def forget(subscriber_id: int) -> None:
    """Erasure: drop the address and the raw reports that name it; keep the events'
    kinds and dates (the figures stay right). Part of the caller's transaction."""
    raw_ids = select(BounceEvent.raw_message_id).where(
        BounceEvent.subscriber_id == subscriber_id,
        BounceEvent.raw_message_id.is_not(None)).scalar_subquery()
    db.session.execute(update(BounceMessage).where(BounceMessage.id.in_(raw_ids))
                       .values(raw=None, envelope_to=None))
    db.session.execute(update(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id)
                       .values(recipient=None, reason="(erased)"))


def purge_raw_reports() -> int:
    """Drop parked reports (event and bytes) older than BOUNCE_PARKED_RETENTION_DAYS, and
    the bytes of the others older than BOUNCE_RAW_RETENTION_DAYS (anyone can mail the
    bounce address, so what it keeps must not grow for ever); believed events stay.
    Returns how many reports lost their bytes."""
    config = current_app.config
    parked_cutoff = utcnow() - timedelta(days=config["BOUNCE_PARKED_RETENTION_DAYS"])
    parked = (BounceEvent.kind == BounceKind.UNPARSED) & (BounceEvent.created_at < parked_cutoff)
    parked_raw = select(BounceEvent.raw_message_id).where(
        parked, BounceEvent.raw_message_id.is_not(None))
    raw_ids = list(db.session.scalars(parked_raw))
    db.session.execute(delete(BounceEvent).where(parked))
    dropped = 0
    for start in range(0, len(raw_ids), 500):  # bounded IN lists
        dropped += db.session.execute(delete(BounceMessage).where(
            BounceMessage.id.in_(raw_ids[start:start + 500]))).rowcount
    cutoff = utcnow() - timedelta(days=config["BOUNCE_RAW_RETENTION_DAYS"])
    purged = db.session.execute(update(BounceMessage).where(
        BounceMessage.received_at < cutoff, BounceMessage.raw.is_not(None))
        .values(raw=None)).rowcount
    return dropped + purged


# --- what owners see --------------------------------------------------------------

def events_for(subscriber_id: int, limit: int = 100) -> list[BounceEvent]:
    return list(db.session.scalars(
        select(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id)
        .order_by(BounceEvent.id.desc()).limit(limit)))


def not_understood(limit: int = 200) -> list[BounceEvent]:
    return list(db.session.scalars(
        select(BounceEvent).where(BounceEvent.kind == BounceKind.UNPARSED)
        .order_by(BounceEvent.id.desc()).limit(limit)))


def raw_message(message_id: int) -> BounceMessage | None:
    return db.session.get(BounceMessage, message_id)

