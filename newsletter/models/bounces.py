"""Bounces: reports as received and the bounce, complaint and reactivation events."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models.base import UTCDateTime, enum_column, utcnow


class BounceKind(enum.StrEnum):
    HARD = "hard"  # the address is gone: the reader is marked bounced at once
    SOFT = "soft"  # mailbox full, greylisted, policy: scored
    COMPLAINT = "complaint"  # "this is spam": the reader is unsubscribed
    UNPARSED = "unparsed"  # not understood, forged or refused: kept for an owner to read
    REACTIVATED = "reactivated"  # an owner made a bounced reader active again


class BounceSource(enum.StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    WEBHOOK = "webhook"
    EDITOR = "editor"


class BounceMessage(db.Model):
    """A report as it arrived (a DSN, an ARF mail, a webhook body), kept as evidence."""

    __tablename__ = "bounce_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource, "bounce_source"))
    envelope_to: Mapped[str | None] = mapped_column(String(320))
    size: Mapped[int] = mapped_column(default=0)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # None when over BOUNCE_MAX_SIZE


class BounceEvent(db.Model):
    """One bounce, complaint or not-understood report, and what it did to a reader."""

    __tablename__ = "bounce_events"
    __table_args__ = (Index("ix_bounce_events_digest_kind", "digest_id", "kind"),
                      Index("ix_bounce_events_subscriber", "subscriber_id", "created_at"),
                      Index("ix_bounce_events_kind_created", "kind", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind, "bounce_kind"))
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource, "bounce_source"))
    provider: Mapped[str | None] = mapped_column(String(64))  # "yahoo.com", "ses", ...
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"))
    outbox_mail_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_mails.id"))
    recipient: Mapped[str | None] = mapped_column(String(254))  # the address reported
    status_code: Mapped[str | None] = mapped_column(String(16))  # e.g. "5.1.1"
    reason: Mapped[str] = mapped_column(Text, default="")  # what the report says
    action: Mapped[str] = mapped_column(Text, default="")  # what we did about it
    raw_message_id: Mapped[int | None] = mapped_column(ForeignKey("bounce_messages.id"))
    # One report counted once, however often it is delivered (a retried webhook, a
    # mailbox message re-read after a crash).
    dedup_key: Mapped[str | None] = mapped_column(String(128), unique=True)
