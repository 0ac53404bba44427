"""Readers: subscribers, their consent log, the confirmation outbox and CSV imports."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models.base import (
    UTCDateTime,
    enum_column,
    new_token_nonce,
    new_unsubscribe_key,
    utcnow,
)

if TYPE_CHECKING:
    from newsletter.models.content import Topic


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # asked to subscribe, has not confirmed
    ACTIVE = "active"  # confirmed; receives mail
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # a hard bounce: the address does not exist


class ConsentAction(enum.StrEnum):
    """What happened to a reader: consent given or withdrawn, and every other change
    of their status or data, so their page tells the whole story."""

    SUBSCRIBE_REQUESTED = "subscribe_requested"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    CONFIRMATION_RESENT = "confirmation_resent"  # an editor asked for another mail
    EDITED = "edited"  # an editor changed the address or name
    BOUNCED = "bounced"
    REACTIVATED = "reactivated"  # an owner said a bounced address works again
    ERASED = "erased"
    # From the preference centre: the detail says what changed.
    PREFERENCES_CHANGED = "preferences_changed"
    PAUSED = "paused"
    RESUMED = "resumed"
    ADDRESS_CHANGE_REQUESTED = "address_change_requested"
    ADDRESS_CHANGED = "address_changed"
    ADDRESS_CHANGE_UNDONE = "address_change_undone"  # from the old address's notice


class ConsentSource(enum.StrEnum):
    FORM = "form"
    API = "api"
    IMPORT = "import"
    ONE_CLICK = "one-click"
    LINK = "link"
    FEEDBACK_LOOP = "feedback-loop"  # a spam complaint (ARF report or a provider's webhook)
    EDITOR = "editor"  # by hand in the workspace; the event's detail names the editor
    BOUNCE = "bounce"  # the mail system: an SMTP refusal or a bounce report
    SUNSET = "sunset"  # the sunset policy: no human click in the last issues


class Cadence(enum.StrEnum):
    """How often a reader gets their digest."""

    WEEKLY = "weekly"
    DAILY = "daily"


class Subscriber(db.Model):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # as given
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[SubscriberStatus] = mapped_column(
        enum_column(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.PENDING,
        index=True,
    )
    # Rotated on every state change so that a used confirmation link cannot be replayed.
    token_nonce: Mapped[str] = mapped_column(String(32), default=new_token_nonce)
    # The token in unsubscribe (and future preference) links: random, not the row id,
    # and independent of SECRET_KEY, so a key rotation does not break old mails' links.
    unsubscribe_key: Mapped[str] = mapped_column(String(32), unique=True,
                                                 default=new_unsubscribe_key)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )
    # Indexed: each sequence run looks for the readers who confirmed since the last.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cadence: Mapped[Cadence] = mapped_column(enum_column(Cadence, "cadence"),
                                             default=Cadence.WEEKLY,
                                             server_default=Cadence.WEEKLY.value)
    # No digest until this moment (the reader asked for a break); NULL = not paused.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A new address the reader asked for, until they confirm it from a mail sent there;
    # mail keeps going to ``email`` meanwhile.
    pending_email: Mapped[str | None] = mapped_column(String(254))
    # Free-form fields an import brought (extra CSV columns): {"plan": "pro", ...}, for
    # segments; NULL = none.
    attributes: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # An IANA zone (readers/choices.py); NULL: the schedule's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # One of NEWSLETTER_LANGUAGES; NULL: the default (the first).
    language: Mapped[str | None] = mapped_column(String(16))

    # The topics this reader chose; none = everything (so existing readers keep it all).
    topics: Mapped[list[Topic]] = relationship(secondary="subscriber_topics",
                                               order_by="Topic.position, Topic.id")
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
    action: Mapped[ConsentAction] = mapped_column(enum_column(ConsentAction, "consent_action"))
    source: Mapped[ConsentSource] = mapped_column(enum_column(ConsentSource, "consent_source"))
    email: Mapped[str] = mapped_column(String(254))  # the address at that moment
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consent_events")


class MailTemplate(enum.StrEnum):
    CONFIRM = "confirm"
    WELCOME = "welcome"
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # asked for from a bad unsubscribe link's page
    CHANGE_ADDRESS = "change_address"  # to the reader's pending_email
    ADDRESS_CHANGED = "address_changed"  # to the old address, with an undo (AddressChange)
    REENGAGE = "reengage"  # the sunset policy's "still want us?", with a keep link


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
    template: Mapped[MailTemplate] = mapped_column(enum_column(MailTemplate, "mail_template"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class RequestKind(enum.StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # "send me my unsubscribe link"
    ADDRESS_CHANGE = "address_change"  # a new address from the preference centre


class SubscribeRequest(db.Model):
    """A subscribe request as received, until a worker has decided what it leads to.

    The web answers every request after writing one of these rows, whatever the
    address's state, so the answer's timing says nothing about who subscribed.
    Deleted when processed: the consent log keeps the evidence.
    """

    __tablename__ = "subscribe_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # as typed
    name: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[ConsentSource] = mapped_column(enum_column(ConsentSource, "consent_source"))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Both kinds share the answer, the timing and the per-mailbox limits.
    kind: Mapped[RequestKind] = mapped_column(enum_column(RequestKind, "request_kind"),
                                              default=RequestKind.SUBSCRIBE,
                                              server_default=RequestKind.SUBSCRIBE.value)
    # The reader's choices, applied only while the address is not yet confirmed:
    # space-separated topic slugs ("" = everything) and a cadence; NULL = not asked.
    topics: Mapped[str | None] = mapped_column(Text)
    cadence: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    # An address change: the reader who asked (``email`` is the new address).
    subscriber_id: Mapped[int | None] = mapped_column()


ADDRESS_UNDO_DAYS = 7  # how long the old address can undo a change


class AddressChange(db.Model):
    """A confirmed change of a reader's address, undoable from the old address for
    a while: the notice mailed there (``notice_mail_id``) carries ``undo_key``, a random
    key that works once."""

    __tablename__ = "address_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    old_email: Mapped[str] = mapped_column(String(254))
    new_email: Mapped[str] = mapped_column(String(254))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undo_key: Mapped[str] = mapped_column(String(32), unique=True, default=new_unsubscribe_key)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notice_mail_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_mails.id"),
                                                       unique=True)


class ConfirmationSend(db.Model):
    """One confirmation mail owed, counted against its mailbox's and domain's limits.

    ``mailbox_key`` is a keyed hash of the canonical mailbox (no address in clear);
    rows older than a day are purged.
    """

    __tablename__ = "confirmation_sends"
    __table_args__ = (Index("ix_confirmation_sends_mailbox", "mailbox_key", "sent_at"),
                      Index("ix_confirmation_sends_domain", "domain", "sent_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_key: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfirmationLock(db.Model):
    """A row per canonical mailbox (and per domain) to lock around check-and-record:
    concurrent workers decide one at a time for one mailbox."""

    __tablename__ = "confirmation_locks"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportJob(db.Model):
    """A CSV import (a check, or the write) run by a worker from a file in
    ``instance/imports/``, reporting its progress here as it goes."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int | None] = mapped_column()
    upload: Mapped[str] = mapped_column(String(32))
    consent: Mapped[str | None] = mapped_column(Text)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[ImportStatus] = mapped_column(enum_column(ImportStatus, "import_status"),
                                                 default=ImportStatus.QUEUED)
    total_bytes: Mapped[int] = mapped_column(default=0)
    bytes_done: Mapped[int] = mapped_column(default=0)
    rows_done: Mapped[int] = mapped_column(default=0)
    valid: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    invalid_count: Mapped[int] = mapped_column(default=0)
    # The first 200 [line, value, why] of each kind (before 0011: invalid as [line, why]).
    invalid_sample: Mapped[list] = mapped_column(JSON, default=list)
    duplicate_sample: Mapped[list] = mapped_column(JSON, default=list)
    # Rows imported with a topic slug left out (it names no topic): [line, value, why].
    topic_note_sample: Mapped[list | None] = mapped_column(JSON, default=list)
    topic_note_count: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Written at the claim and with each chunk's progress: the stalled-job sweeper's clock.
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Segment(db.Model):
    """A saved, named set of conditions over reader fields (readers/segments.py owns
    them): an issue can go to the active readers who meet all of them."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # [{"field": ..., "op": ..., "value": ..., "key"?: ...}], checked against the
    # whitelist in readers/segments.py when written and again when read.
    conditions: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SunsetState(enum.StrEnum):
    ACTIVE = "active"  # counted from ``changed_at`` (no row: from the start)
    REENGAGING = "reengaging"  # the re-engagement mail is owed or sent; grace runs
    PAUSED = "paused"  # paused by the policy until the reader resumes or clicks


class ReaderSunset(db.Model):
    """A reader's place in the sunset policy (readers/sunset.py is its one writer).
    No row: active, counted from the reader's first issue."""

    __tablename__ = "reader_sunsets"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[SunsetState] = mapped_column(enum_column(SunsetState, "sunset_state"),
                                               default=SunsetState.ACTIVE, index=True)
    # When the state was entered; NULL: an active reader never moved (count everything).
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KeyFingerprint(db.Model):
    """A fingerprint (never the key) of a key the stored data depends on, written at the
    first start: a process started with another key (a second host, a restore, a new
    virtualenv) refuses to start rather than forget every erasure."""

    __tablename__ = "key_fingerprints"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
