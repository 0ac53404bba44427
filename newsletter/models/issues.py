"""Issues: digests, their per-reader variants and the delivery ledger."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models.base import UTCDateTime, enum_column, utcnow
from newsletter.models.readers import Cadence

if TYPE_CHECKING:
    from newsletter.models.content import Article
    from newsletter.models.readers import Segment


class DigestStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"  # an editor stopped it; batches resume from the ledger
    SENT = "sent"
    CANCELLED = "cancelled"


class DigestKind(enum.StrEnum):
    ISSUE = "issue"  # an issue of the newsletter: composed, sent, archived
    # A sequence step's sending: stays sending while readers keep entering; never in
    # the archive or the issue lists.
    SEQUENCE_STEP = "sequence_step"


digest_articles = Table(
    "digest_articles",
    db.metadata,
    Column("digest_id", Integer, ForeignKey("digests.id"), primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
)


class Digest(db.Model):
    """One issue of the newsletter."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "weekly-2026-W48" for a scheduled period: unique, so a second trigger is a no-op.
    # NULL for issues sent by hand.
    period_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    # The mail's H1; NULL: the default (site name and date, digests.headline_of).
    headline: Mapped[str | None] = mapped_column(String(300))
    intro: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[DigestStatus] = mapped_column(
        enum_column(DigestStatus, "digest_status"), default=DigestStatus.DRAFT, index=True)
    recipients: Mapped[int] = mapped_column(default=0)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when scheduled by hand
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the send paused itself (e.g. the relay was unreachable); NULL when an editor did.
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # An owner resumed a send the deliverability guard paused: from then on the guard
    # judges only the messages sent after this moment.
    guard_acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whose schedule this issue is: weekly or daily readers. NULL for issues sent by
    # hand, which go to every reader whatever their cadence.
    cadence: Mapped[Cadence | None] = mapped_column(enum_column(Cadence, "cadence"))
    kind: Mapped[DigestKind] = mapped_column(enum_column(DigestKind, "digest_kind"),
                                             default=DigestKind.ISSUE,
                                             server_default=DigestKind.ISSUE.value)
    # Sent only to this segment's readers; NULL = the whole audience.
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    # Kept out of the public archive (it was for the segment only).
    segment_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Sent in reader time: the local wall time ("2026-03-30T08:00") each reader gets it
    # at in their own zone (issues/waves.py); NULL: everyone at once.
    reader_local_time: Mapped[str | None] = mapped_column(String(16))
    # Per-language words: {"fr": {"subject": ..., "intro": ...}}; a language missing
    # here (or an empty field) falls back to ``subject`` and ``intro``.
    translations: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # Its copies carried the reader's id (clicks and per-reader tracking on when it
    # started, and in every worker that sent it): only such issues count for sunset.
    readers_tracked: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false())

    # Every article the issue covers; each reader's copy (a variant) is a subset.
    articles: Mapped[list[Article]] = relationship(
        secondary=digest_articles, order_by="Article.published_at")
    variants: Mapped[list[DigestVariant]] = relationship(
        back_populates="digest", order_by="DigestVariant.id")
    segment: Mapped[Segment | None] = relationship()


class DigestVariant(db.Model):
    """One distinct content of an issue: the readers of the same topics who had the
    same articles already get the same copy, rendered once."""

    __tablename__ = "digest_variants"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"), index=True)
    # The readers' topic ids, sorted; [] = no choice made (everything, today's sections).
    topic_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    article_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # in reading order
    subject: Mapped[str] = mapped_column(String(300))
    # The readers' language: the chrome's, and which articles it may hold (theirs and
    # language-less ones). NULL for variants written before languages.
    language: Mapped[str | None] = mapped_column(String(16))

    digest: Mapped[Digest] = relationship(back_populates="variants")


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker until lease_until
    SENT = "sent"  # the server answered 250
    DEFERRED = "deferred"  # 4xx: retried at next_attempt_at
    FAILED = "failed"  # 5xx, or too many 4xx
    # Maybe delivered, never resent: the connection died after DATA, or a worker died
    # while sending a row it had already resent once after a crash.
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # unsubscribed or bounced before their turn


# Every other status is final. Listed, not negated, so the check is an index seek.
OPEN_DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED)


class Delivery(db.Model):
    """The ledger: one row per (digest, subscriber), so each is sent at most once."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("digest_id", "subscriber_id"),
                      # id last: a claim takes the lowest ids of a status in index order
                      Index("ix_deliveries_digest_status_id", "digest_id", "status", "id"),
                      # the claim's own: pending rows in id order, none of those sent
                      Index("ix_deliveries_pending", "digest_id", "id",
                            postgresql_where=text("status = 'pending'"),
                            sqlite_where=text("status = 'pending'")),
                      Index("ix_deliveries_claim", "claim"),
                      # a reader's history: their page, export, erasure, the sunset policy
                      Index("ix_deliveries_subscriber", "subscriber_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"))
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The owner token of the batch that holds this row: every write about the row
    # says it (WHERE id = ? AND claim = ?), so a worker that lost its lease stops.
    claim: Mapped[str | None] = mapped_column(String(32))
    # Set just before this row's DATA (with the previous row's result): a lease that
    # expires with it set means "maybe sent": resent once, then recorded unknown.
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The sweeper resent this row because its worker died mid-message: the reader
    # may hold two copies (same Message-ID).
    resent_after_crash: Mapped[bool] = mapped_column(Boolean, default=False,
                                                     server_default=false())
    # The relay (its name in NEWSLETTER_SMTP_RELAYS) that answered for this row.
    relay: Mapped[str | None] = mapped_column(String(100))
    # Which copy this reader gets; NULL only for rows skipped when the ledger was written.
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("digest_variants.id"))
    # Not sent before this moment: the reader's wave of an issue sent in reader time.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
