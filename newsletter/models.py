"""SQLAlchemy 2.0 typed models: subscribers, their consent log, the confirmation outbox."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_token_nonce() -> str:
    return secrets.token_urlsafe(12)


def new_unsubscribe_key() -> str:
    """128 random bits, URL-safe, no dot (so it never looks like an old signed token)."""
    return secrets.token_urlsafe(16)


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


class ConsentSource(enum.StrEnum):
    FORM = "form"
    API = "api"
    IMPORT = "import"
    ONE_CLICK = "one-click"
    LINK = "link"
    FEEDBACK_LOOP = "feedback-loop"  # a spam complaint (ARF report or a provider's webhook)
    EDITOR = "editor"  # by hand in the workspace; the event's detail names the editor
    BOUNCE = "bounce"  # the mail system: an SMTP refusal or a bounce report


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native PostgreSQL enum) so adding a value is a
    # one-line change, not a migration that alters a type.
    return Enum(
        enum_class, name=name, native_enum=False, length=32,
        values_callable=lambda members: [member.value for member in members],
    )


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
        _enum(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.PENDING, index=True
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
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cadence: Mapped[Cadence] = mapped_column(_enum(Cadence, "cadence"), default=Cadence.WEEKLY,
                                             server_default=Cadence.WEEKLY.value)
    # No digest until this moment (the reader asked for a break); NULL = not paused.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A new address the reader asked for, until they confirm it from a mail sent there;
    # mail keeps going to ``email`` meanwhile.
    pending_email: Mapped[str | None] = mapped_column(String(254))

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
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # asked for from a bad unsubscribe link's page
    CHANGE_ADDRESS = "change_address"  # to the reader's pending_email


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


class RequestKind(enum.StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # "send me my unsubscribe link"


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
    source: Mapped[ConsentSource] = mapped_column(_enum(ConsentSource, "consent_source"))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Both kinds share the answer, the timing and the per-mailbox limits.
    kind: Mapped[RequestKind] = mapped_column(_enum(RequestKind, "request_kind"),
                                              default=RequestKind.SUBSCRIBE,
                                              server_default=RequestKind.SUBSCRIBE.value)
    # The reader's choices, applied only while the address is not yet confirmed:
    # space-separated topic slugs ("" = everything) and a cadence; NULL = not asked.
    topics: Mapped[str | None] = mapped_column(Text)
    cadence: Mapped[str | None] = mapped_column(String(16))


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


class ArticleSource(enum.StrEnum):
    FEED = "feed"
    API = "api"
    IMPORT = "import"
    EDITOR = "editor"


class Article(db.Model):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)  # canonical
    guid: Mapped[str | None] = mapped_column(String(2048), unique=True)  # a feed's id
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised with nh3
    # What an editor typed, when they wrote Markdown: body_html is rendered from it.
    body_markdown: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200))
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[ArticleSource] = mapped_column(_enum(ArticleSource, "article_source"))
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)  # kept out of digests
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The feed it came from (topics can map a whole feed); NULL for files and the API.
    feed_url: Mapped[str | None] = mapped_column(String(2048))

    topics: Mapped[list[Topic]] = relationship(secondary="article_topics", viewonly=True,
                                               order_by="Topic.position, Topic.id")


class Topic(db.Model):
    """A beat readers can choose. Articles land in it by category, by feed, or by hand."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)  # [a-z0-9-]
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)  # order in forms and digests
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)  # article categories
    feeds: Mapped[list[str]] = mapped_column(JSON, default=list)  # feed URLs
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Which topics an article is in. Rows from the topics' rules are recomputed when an
# article arrives or a rule changes; ``manual`` rows (an editor's choice) are kept.
article_topics = Table(
    "article_topics",
    db.metadata,
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
    Column("topic_id", Integer, ForeignKey("topics.id"), primary_key=True, index=True),
    Column("manual", Boolean, nullable=False, default=False, server_default=false()),
)

subscriber_topics = Table(
    "subscriber_topics",
    db.metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id"), primary_key=True),
    Column("topic_id", Integer, ForeignKey("topics.id"), primary_key=True, index=True),
)


class FeedState(db.Model):
    """What a feed said last time, for conditional GET (ETag / Last-Modified)."""

    __tablename__ = "feed_states"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(512))
    modified: Mapped[str | None] = mapped_column(String(128))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class DigestStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"  # an editor stopped it; batches resume from the ledger
    SENT = "sent"
    CANCELLED = "cancelled"


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
        _enum(DigestStatus, "digest_status"), default=DigestStatus.DRAFT, index=True)
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
    cadence: Mapped[Cadence | None] = mapped_column(_enum(Cadence, "cadence"))

    # Every article the issue covers; each reader's copy (a variant) is a subset.
    articles: Mapped[list[Article]] = relationship(
        secondary=digest_articles, order_by="Article.published_at")
    variants: Mapped[list[DigestVariant]] = relationship(
        back_populates="digest", order_by="DigestVariant.id")


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
                      Index("ix_deliveries_digest_status", "digest_id", "status"),
                      Index("ix_deliveries_claim", "claim"))

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"))
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING)
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
    # Which copy this reader gets; NULL only for rows skipped when the ledger was written.
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("digest_variants.id"))


class Role(enum.StrEnum):
    """What an editor may do; each role includes the ones below it."""

    AUTHOR = "author"  # articles only
    EDITOR = "editor"  # compose, send, articles, subscribers
    OWNER = "owner"  # editors, tokens, settings, erase, export, audit log

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class Editor(UserMixin, db.Model):
    __tablename__ = "editors"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    role: Mapped[Role] = mapped_column(_enum(Role, "editor_role"), default=Role.EDITOR)
    # Removed editors stay as rows (the audit log and tokens point at them) but cannot log in.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Changes whenever the password is set, so an invitation link works once.
    password_nonce: Mapped[str] = mapped_column(String(32), default=new_token_nonce)
    # TOTP second factor: the base32 secret, set when enrolment is confirmed.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column()  # a code is accepted once

    @property
    def is_active(self) -> bool:  # Flask-Login: removed editors are logged out
        return self.removed_at is None


class EditorSession(db.Model):
    """One login. The cookie names it; revoking the row ends every copy of the cookie."""

    __tablename__ = "editor_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(db.Model):
    """A one-time second factor; only its hash is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(db.Model):
    """An editor's token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(String(200), default="")  # space-separated
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(45))

    editor: Mapped[Editor] = relationship()

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class AuditEvent(db.Model):
    """Append-only: who did what, when, from where. No foreign key on purpose, so
    the record outlives the editor and token it names."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    editor_id: Mapped[int | None] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(254))  # the editor's address at the time
    token_id: Mapped[int | None] = mapped_column()
    ip_address: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied | failed
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)


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
    status: Mapped[ImportStatus] = mapped_column(_enum(ImportStatus, "import_status"),
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
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EditorMailKind(enum.StrEnum):
    INVITE = "invite"
    LOGIN_ALERT = "login_alert"


class EditorMail(db.Model):
    """A mail owed to an editor (invitation, failed-login alert), sent through the
    transactional queue like a reader's confirmation: a row first, a task after commit."""

    __tablename__ = "editor_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id"), index=True)
    kind: Mapped[EditorMailKind] = mapped_column(_enum(EditorMailKind, "editor_mail_kind"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)


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
    source: Mapped[BounceSource] = mapped_column(_enum(BounceSource, "bounce_source"))
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
    kind: Mapped[BounceKind] = mapped_column(_enum(BounceKind, "bounce_kind"))
    source: Mapped[BounceSource] = mapped_column(_enum(BounceSource, "bounce_source"))
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


class SiteSetting(db.Model):
    """One setting owners edit in the workspace (branding, mail texts): see
    services/site_settings.py for the keys and how each value is checked."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
