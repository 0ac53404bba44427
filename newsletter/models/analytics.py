"""Clicks (and, when turned on, opens) on an issue's links: the verdict, never the visitor.

A row holds what the report needs and nothing that identifies a person: no IP, no
user agent, and a reader id only when NEWSLETTER_TRACK_READERS is on. ``copy`` is a
random number drawn when the reader's message was built and stored nowhere else,
so clicks of one copy can be told apart from another's without knowing whose it is.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models.base import UTCDateTime, enum_column


class Verdict(enum.StrEnum):
    HUMAN = "human"
    BOT = "bot"  # a scanner, link checker, crawler or flood
    PROXY = "proxy"  # opens only: a mail provider's prefetch (Apple MPP, image proxies)


class ClickKind(enum.StrEnum):
    CLICK = "click"
    OPEN = "open"


class Click(db.Model):
    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_digest_at", "digest_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Drawn by the redirect: the drain stores a record once even if it runs twice.
    record_key: Mapped[str] = mapped_column(String(24), unique=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[ClickKind] = mapped_column(enum_column(ClickKind, "click_kind"),
                                            default=ClickKind.CLICK)
    link: Mapped[int] = mapped_column(Integer)  # the article's id; 0 for an open
    copy: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[Verdict] = mapped_column(enum_column(Verdict, "click_verdict"))
    reason: Mapped[str] = mapped_column(String(32))  # why: "browser", "head", "burst", ...
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    subscriber_id: Mapped[int | None] = mapped_column(  # only with TRACK_READERS
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True)


class ClickDay(db.Model):
    """Raw rows older than CLICK_RETENTION_DAYS, folded: one row per issue, copy's
    topic set, link, kind and day."""

    __tablename__ = "click_days"
    __table_args__ = (UniqueConstraint("digest_id", "variant_id", "kind", "link", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"),
                                           index=True)
    variant_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[ClickKind] = mapped_column(enum_column(ClickKind, "click_kind"))
    link: Mapped[int] = mapped_column(Integer)
    day: Mapped[date] = mapped_column(Date)
    human: Mapped[int] = mapped_column(default=0)
    bot: Mapped[int] = mapped_column(default=0)
    proxy: Mapped[int] = mapped_column(default=0)
    human_copies: Mapped[int] = mapped_column(default=0)  # distinct copies that day
