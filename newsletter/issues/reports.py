"""Figures for the editor workspace: list size, growth, issue reports, searches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select

from newsletter.extensions import db
from newsletter.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestKind,
    Subscriber,
    SubscriberStatus,
    utcnow,
)


def subscribers_by_status() -> dict[str, int]:
    counts = dict.fromkeys((status.value for status in SubscriberStatus), 0)
    for status, count in db.session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status)):
        counts[status.value] = count
    # Confirmed readers on a break: counted among the active, and apart, so an editor
    # sees why fewer digests go out than there are confirmed readers.
    counts["paused"] = db.session.scalar(select(func.count()).select_from(Subscriber).where(
        Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.paused_until > utcnow()))
    return counts


@dataclass(frozen=True)
class WeekGrowth:
    label: str  # the Monday the week starts, e.g. "24 Nov"
    confirmed: int


def weekly_growth(weeks: int = 8) -> list[WeekGrowth]:
    """Confirmations per week, oldest first; counted in Python over one small query."""
    now = utcnow()
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    starts = [monday - timedelta(weeks=n) for n in reversed(range(weeks))]
    confirmed = db.session.scalars(select(Subscriber.confirmed_at).where(
        Subscriber.confirmed_at >= starts[0]))
    counts = [0] * weeks
    for moment in confirmed:
        index = (moment - starts[0]).days // 7
        if 0 <= index < weeks:
            counts[index] += 1
    return [WeekGrowth(start.strftime("%d %b"), count) for start, count in zip(starts, counts,
                                                                                 strict=True)]


@dataclass(frozen=True)
class IssueReport:
    digest: Digest
    counts: dict[str, int]  # deliveries by status, plus "bounced"


def recent_issues(limit: int = 10) -> list[IssueReport]:
    issues = list(db.session.scalars(select(Digest).where(Digest.kind == DigestKind.ISSUE)
                                     .order_by(Digest.id.desc()).limit(limit)))
    counts: dict[int, dict[str, int]] = {issue.id: {} for issue in issues}
    for digest_id, status, count in db.session.execute(
            select(Delivery.digest_id, Delivery.status, func.count())
            .where(Delivery.digest_id.in_(counts)).group_by(Delivery.digest_id, Delivery.status)):
        counts[digest_id][status.value] = count
    for digest_id, count in db.session.execute(
            select(Delivery.digest_id, func.count()).join(Subscriber)
            .where(Delivery.digest_id.in_(counts), Delivery.status == DeliveryStatus.FAILED,
                   Subscriber.status == SubscriberStatus.BOUNCED)
            .group_by(Delivery.digest_id)):
        counts[digest_id]["bounced"] = count
    return [IssueReport(issue, counts[issue.id]) for issue in issues]


def issues_with_failures(recent: int = 20) -> list[IssueReport]:
    """Of the last ``recent`` issues, those some readers were not reached by (failed,
    unknown or still deferred): the dashboard points at their reports."""
    return [report for report in recent_issues(recent)
            if any(report.counts.get(status.value) for status in NOT_REACHED)]


def bounced_in(digest_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Delivery).join(Subscriber).where(
        Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.FAILED,
        Subscriber.status == SubscriberStatus.BOUNCED))


@dataclass(frozen=True)
class DeliveryLine:
    """One delivery as the workspace shows it: who or which issue, what, why, when."""

    subscriber_id: int
    email: str
    digest_id: int
    subject: str
    status: str
    reason: str
    at: object  # datetime | None: sent, last tried, or next retry


NOT_REACHED = (DeliveryStatus.FAILED, DeliveryStatus.DEFERRED, DeliveryStatus.UNKNOWN)


def _delivery_lines(*conditions, limit: int) -> list[DeliveryLine]:
    rows = db.session.execute(
        select(Delivery.subscriber_id, Subscriber.email, Delivery.digest_id, Digest.subject,
               Delivery.status, Delivery.last_error, Delivery.sent_at,
               Delivery.next_attempt_at, Delivery.attempted_at)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(Digest, Digest.id == Delivery.digest_id)
        .where(*conditions).order_by(Delivery.digest_id.desc(), Delivery.id).limit(limit))
    return [DeliveryLine(subscriber_id, email, digest_id, subject, status.value,
                         last_error or "", sent_at or next_attempt_at or attempted_at)
            for (subscriber_id, email, digest_id, subject, status, last_error, sent_at,
                 next_attempt_at, attempted_at) in rows]


def not_reached(digest_id: int, limit: int = 500) -> list[DeliveryLine]:
    """An issue's failed, deferred and unknown deliveries, with the recorded reason."""
    return _delivery_lines(Delivery.digest_id == digest_id, Delivery.status.in_(NOT_REACHED),
                           limit=limit)


@dataclass
class RelayLine:
    relay: str
    sent: int
    failed: int  # failed or unknown: the relay refused it or the connection broke after DATA
    deferred: int


def by_relay(digest_id: int) -> list[RelayLine]:
    """What each relay carried of an issue: one grouped query."""
    lines: dict[str, RelayLine] = {}
    for relay, status, count in db.session.execute(
            select(Delivery.relay, Delivery.status, func.count())
            .where(Delivery.digest_id == digest_id, Delivery.relay.is_not(None))
            .group_by(Delivery.relay, Delivery.status)):
        line = lines.setdefault(relay, RelayLine(relay, 0, 0, 0))
        if status == DeliveryStatus.SENT:
            line.sent += count
        elif status in (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN):
            line.failed += count
        elif status == DeliveryStatus.DEFERRED:
            line.deferred += count
    return sorted(lines.values(), key=lambda line: line.relay)


def deliveries_of(subscriber_id: int, issues: int = 10) -> list[DeliveryLine]:
    """What happened to one reader's copy of each of the last issues."""
    return _delivery_lines(Delivery.subscriber_id == subscriber_id, limit=issues)


PAGE_SIZE = 50


def search_subscribers(query: str = "", status: str = "", page: int = 1) -> list[Subscriber]:
    statement = select(Subscriber).order_by(Subscriber.id.desc())
    if query:
        pattern = f"%{query.strip().lower()}%"
        statement = statement.where(or_(Subscriber.email_normalized.like(pattern),
                                        func.lower(Subscriber.name).like(pattern)))
    if status in {s.value for s in SubscriberStatus}:
        statement = statement.where(Subscriber.status == status)
    return list(db.session.scalars(
        statement.limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE)))


def search_articles(query: str = "", limit: int = 100) -> list[Article]:
    statement = select(Article).order_by(Article.published_at.desc()).limit(limit)
    if query:
        statement = statement.where(func.lower(Article.title).like(f"%{query.strip().lower()}%"))
    return list(db.session.scalars(statement))
