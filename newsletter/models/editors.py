"""Editors: accounts and roles, sessions, second factors, API tokens, the audit log, their mail."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models.base import UTCDateTime, enum_column, new_token_nonce, utcnow


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
    role: Mapped[Role] = mapped_column(enum_column(Role, "editor_role"), default=Role.EDITOR)
    # Removed editors stay as rows (the audit log and tokens point at them) but cannot log in.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Changes whenever the password is set, so an invitation link works once.
    password_nonce: Mapped[str] = mapped_column(String(32), default=new_token_nonce)
    # TOTP second factor: the base32 secret, set when enrolment is confirmed.
    # Sealed with the TOTP key (editors/two_factor.py), never the secret itself.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
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


class EditorMailKind(enum.StrEnum):
    INVITE = "invite"
    LOGIN_ALERT = "login_alert"
    WEBHOOK_DISABLED = "webhook_disabled"


class EditorMail(db.Model):
    """A mail owed to an editor (invitation, failed-login alert), sent through the
    transactional queue like a reader's confirmation: a row first, a task after commit."""

    __tablename__ = "editor_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id"), index=True)
    kind: Mapped[EditorMailKind] = mapped_column(enum_column(EditorMailKind, "editor_mail_kind"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
