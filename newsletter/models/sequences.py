"""Sequences: mails that follow a reader's entry (confirmation, or choosing a topic),
one step after another, each a duration after the reader entered."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models.base import UTCDateTime, enum_column, utcnow


class Sequence(db.Model):
    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # NULL: readers enter on confirmation; else when they hold this topic.
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id"))
    # Readers who entered before this moment join only on purpose (enroll --existing).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Entrants were looked for up to here: the next run looks only at readers who
    # confirmed or chose the topic since (less a margin for transactions in flight).
    entrants_seen_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Quiet hours: steps go out only from window_start to window_end (minutes after
    # midnight, on the reader's clock or the site's); NULL: at any hour.
    window_start: Mapped[int | None] = mapped_column()
    window_end: Mapped[int | None] = mapped_column()


class SequenceStep(db.Model):
    """One mail of a sequence. Its sending is a long-lived issue (``digest_id``, kind
    sequence_step, always sending), so each reader's copy is one row of the ledger."""

    __tablename__ = "sequence_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id"), index=True)
    position: Mapped[int] = mapped_column()  # 1, 2, ... in sending order
    delay_seconds: Mapped[int] = mapped_column()  # after the reader entered
    subject: Mapped[str] = mapped_column(String(300))
    body_markdown: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)  # rendered and sanitised once, when saved
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"), unique=True)
    # Bumped by every edit: a worker renders the step again instead of its cached copy.
    revision: Mapped[int] = mapped_column(default=1)
    # Every URL its tracked links have pointed at, in order (a link's number is its place
    # + 1); an edit only appends, so a link in a copy sent before it keeps redirecting.
    # NULL: a step saved before links were tracked; its links are read from body_html.
    tracked_urls: Mapped[list[str] | None] = mapped_column(JSON)
    # The editor's words in other languages than the default: {"fr": {"subject": ...,
    # "body_markdown": ..., "body_html": ...}}, each part optional (the default's then).
    translations: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnrolmentState(enum.StrEnum):
    WAITING = "waiting"  # for its next step to be due
    SENDING = "sending"  # its current step has a ledger row that is not final yet
    COMPLETED = "completed"  # every step passed
    LEFT = "left"  # unsubscribed, bounced or complained


class Enrolment(db.Model):
    """Where one reader is in one sequence (owner: ``sequences/enrolment.py``)."""

    __tablename__ = "sequence_enrolments"
    __table_args__ = (UniqueConstraint("sequence_id", "subscriber_id"),
                      Index("ix_sequence_enrolments_state", "sequence_id", "state"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[EnrolmentState] = mapped_column(
        enum_column(EnrolmentState, "enrolment_state"), default=EnrolmentState.WAITING)
    # The position of the last step this reader passed (0: none yet).
    passed_position: Mapped[int] = mapped_column(default=0)
    # The step whose ledger row is open (state sending).
    current_step_id: Mapped[int | None] = mapped_column(ForeignKey("sequence_steps.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
