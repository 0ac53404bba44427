"""Shared column helpers: UTC timestamps, random tokens, the aware-datetime type, enum columns."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum, TypeDecorator


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


def enum_column(enum_class: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native PostgreSQL enum) so adding a value is a
    # one-line change, not a migration that alters a type.
    return Enum(
        enum_class, name=name, native_enum=False, length=32,
        values_callable=lambda members: [member.value for member in members],
    )
