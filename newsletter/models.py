"""SQLAlchemy 2.0 typed models: subscribers, their consent log, the confirmation outbox."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum, ForeignKey, Index, String, Text, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_token_nonce() -> str:
    return secrets.token_urlsafe(12)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # asked to subscribe, has not confirmed
    ACTIVE = "active"  # confirmed; receives mail
    UNSUBSCRIBED = "unsubscribed"


class ConsentAction(enum.StrEnum):
    SUBSCRIBE_REQUESTED = "subscribe_requested"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class ConsentSource(enum.StrEnum):
    FORM = "form"
    API = "api"
    IMPORT = "import"
    ONE_CLICK = "one-click"
    LINK = "link"


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native PostgreSQL enum) so adding a value is a
    # one-line change, not a migration that alters a type.
    return Enum(
        enum_class, name=name, native_enum=False, length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Subscriber(db.Model):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # as given
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[SubscriberStatus] = mapped_column(
        _enum(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.PENDING, index=True
    )
    # Rotated on every state change so that a used confirmation link cannot be replayed.
    token_nonce: Mapped[str] = mapped_column(String(32), default=new_token_nonce)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="subscriber", order_by="ConsentEvent.id"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status.value}>"


class ConsentEvent(db.Model):
    """Append-only evidence of consent: never updated, never deleted."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    action: Mapped[ConsentAction] = mapped_column(_enum(ConsentAction, "consent_action"))
    source: Mapped[ConsentSource] = mapped_column(_enum(ConsentSource, "consent_source"))
    email: Mapped[str] = mapped_column(String(254))  # the address at that moment
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consent_events")


class MailTemplate(enum.StrEnum):
    CONFIRM = "confirm"
    WELCOME = "welcome"


class OutboxMail(db.Model):
    """A mail to one subscriber that is owed until ``sent_at`` is set.

    Rows are written in the same transaction as the request that owes them, so
    a mail is never lost when Redis is down: the sweeper re-enqueues owed rows.
    """

    __tablename__ = "outbox_mails"
    __table_args__ = (Index("ix_outbox_mails_owed", "sent_at", "requested_at"),
                      Index("ix_outbox_mails_subscriber", "subscriber_id", "template"))

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"))
    template: Mapped[MailTemplate] = mapped_column(_enum(MailTemplate, "mail_template"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
