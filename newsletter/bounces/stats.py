"""Bounce and complaint figures: per issue, per domain, per day."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, select

from newsletter.extensions import db
from newsletter.models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    utcnow,
)


def has_bad_events(digest_id: int) -> bool:
    return db.session.scalar(select(BounceEvent.id).where(
        BounceEvent.digest_id == digest_id,
        BounceEvent.kind.in_([BounceKind.HARD, BounceKind.COMPLAINT])).limit(1)) is not None


def issue_rates(digest_id: int, since=None) -> dict:
    """Hard bounces and complaints of one issue over the messages it has sent
    (only those sent after ``since``, when given)."""
    sent_rows = [Delivery.digest_id == digest_id,
                 Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.UNKNOWN])]
    if since is not None:
        sent_rows.append(Delivery.sent_at > since)
    sent = db.session.scalar(select(func.count()).where(*sent_rows))
    counted = select(BounceEvent.kind, func.count(func.distinct(BounceEvent.subscriber_id))
                     ).where(BounceEvent.digest_id == digest_id,
                             BounceEvent.kind.in_([BounceKind.HARD, BounceKind.SOFT,
                                                   BounceKind.COMPLAINT]))
    if since is not None:
        counted = counted.join(Delivery, and_(Delivery.digest_id == BounceEvent.digest_id,
                                              Delivery.subscriber_id == BounceEvent.subscriber_id,
                                              Delivery.sent_at > since))
    counts = dict(db.session.execute(counted.group_by(BounceEvent.kind)).all())
    hard, soft = counts.get(BounceKind.HARD, 0), counts.get(BounceKind.SOFT, 0)
    complaints = counts.get(BounceKind.COMPLAINT, 0)
    return {"sent": sent, "hard": hard, "soft": soft, "complaints": complaints,
            "hard_percent": 100 * hard / sent if sent else 0.0,
            "complaint_percent": 100 * complaints / sent if sent else 0.0}


def issue_domains(digest_id: int, limit: int = 20) -> list[dict]:
    """Per recipient domain: sent, hard, soft bounces and complaints, biggest first."""
    domain_of = {}
    rows: dict[str, dict] = {}
    for subscriber_id, email in db.session.execute(
            select(Subscriber.id, Subscriber.email).join(
                Delivery, and_(Delivery.subscriber_id == Subscriber.id,
                               Delivery.digest_id == digest_id,
                               Delivery.status.in_([DeliveryStatus.SENT,
                                                    DeliveryStatus.UNKNOWN])))):
        domain = email.rpartition("@")[2].lower()
        domain_of[subscriber_id] = domain
        rows.setdefault(domain, {"domain": domain, "sent": 0, "hard": 0, "soft": 0,
                                 "complaint": 0})["sent"] += 1
    for subscriber_id, kind in db.session.execute(
            select(BounceEvent.subscriber_id, BounceEvent.kind).where(
                BounceEvent.digest_id == digest_id,
                BounceEvent.kind.in_([BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT])
            ).distinct()):
        domain = domain_of.get(subscriber_id)
        if domain:
            rows[domain][kind.value] += 1
    return sorted(rows.values(), key=lambda row: (-row["sent"], row["domain"]))[:limit]


def rates_by_day(days: int = 30) -> list[dict]:
    """Messages sent, hard bounces and complaints per day (UTC), oldest first."""
    start = (utcnow() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    rows = {str((start + timedelta(days=n)).date()): {"day": start + timedelta(days=n),
                                                      "sent": 0, "hard": 0, "complaint": 0}
            for n in range(days)}
    day = func.date(Delivery.sent_at)
    for when, count in db.session.execute(
            select(day, func.count()).where(Delivery.sent_at >= start).group_by(day)):
        if str(when) in rows:
            rows[str(when)]["sent"] += count
    day = func.date(BounceEvent.created_at)
    for when, kind, count in db.session.execute(
            select(day, BounceEvent.kind, func.count()).where(
                BounceEvent.created_at >= start,
                BounceEvent.kind.in_([BounceKind.HARD, BounceKind.COMPLAINT]))
            .group_by(day, BounceEvent.kind)):
        if str(when) in rows:
            rows[str(when)][kind.value] += count
    result = list(rows.values())
    for row in result:
        row["hard_percent"] = 100 * row["hard"] / row["sent"] if row["sent"] else 0.0
        row["complaint_percent"] = 100 * row["complaint"] / row["sent"] if row["sent"] else 0.0
    return result


def totals(rows: list[dict]) -> dict:
    sent = sum(row["sent"] for row in rows)
    hard = sum(row["hard"] for row in rows)
    complaints = sum(row["complaint"] for row in rows)
    return {"sent": sent, "hard": hard, "complaints": complaints,
            "hard_percent": 100 * hard / sent if sent else 0.0,
            "complaint_percent": 100 * complaints / sent if sent else 0.0}
