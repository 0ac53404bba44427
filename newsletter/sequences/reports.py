"""What a sequence's page, the CLI and the API show: each step's sent, failed and
waiting, and where each reader is."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import (
    OPEN_DELIVERY_STATUSES,
    Delivery,
    DeliveryStatus,
    Enrolment,
    EnrolmentState,
    Sequence,
    SequenceStep,
    Subscriber,
    Topic,
)
from newsletter.sequences.quiet_hours import format_window
from newsletter.sequences.steps import all_sequences, steps_of

FAILED = (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)


@dataclass
class StepReport:
    id: int
    position: int
    delay_seconds: int
    subject: str
    digest_id: int  # the step's sending: its report holds the step's clicks
    sent: int = 0
    failed: int = 0  # refused, or maybe delivered (unknown)
    skipped: int = 0  # left before their turn
    # A ledger row not final yet, or a reader in the sequence for whom this is next.
    waiting: int = 0


@dataclass
class Summary:
    id: int
    name: str
    topic: str | None
    created_at: datetime
    readers: dict[str, int] = field(default_factory=dict)  # by enrolment state
    steps: list[StepReport] = field(default_factory=list)
    window: str = ""  # quiet hours, "08:00-20:00"; empty: any hour


def step_reports(sequence_id: int) -> list[StepReport]:
    steps = steps_of(sequence_id)
    reports = {step.digest_id: StepReport(step.id, step.position, step.delay_seconds,
                                          step.subject, step.digest_id) for step in steps}
    for digest_id, status, count in db.session.execute(
        select(Delivery.digest_id, Delivery.status, func.count())
        .where(Delivery.digest_id.in_(list(reports)))
        .group_by(Delivery.digest_id, Delivery.status)
    ):
        report = reports[digest_id]
        if status == DeliveryStatus.SENT:
            report.sent += count
        elif status in FAILED:
            report.failed += count
        elif status in OPEN_DELIVERY_STATUSES:
            report.waiting += count
        else:
            report.skipped += count
    # Readers waiting in the sequence count against the step they wait for.
    by_position = {report.position: report for report in reports.values()}
    for passed, count in db.session.execute(
        select(Enrolment.passed_position, func.count())
        .where(Enrolment.sequence_id == sequence_id,
               Enrolment.state == EnrolmentState.WAITING)
        .group_by(Enrolment.passed_position)
    ):
        following = [position for position in by_position if position > passed]
        if following:
            by_position[min(following)].waiting += count
    return sorted(reports.values(), key=lambda report: report.position)


def summaries() -> list[Summary]:
    topics = {topic.id: topic.slug for topic in db.session.scalars(select(Topic))}
    states: dict[int, dict[str, int]] = defaultdict(dict)
    for sequence_id, state, count in db.session.execute(
        select(Enrolment.sequence_id, Enrolment.state, func.count())
        .group_by(Enrolment.sequence_id, Enrolment.state)
    ):
        states[sequence_id][state.value] = count
    return [Summary(sequence.id, sequence.name, topics.get(sequence.topic_id),
                    sequence.created_at, states[sequence.id], step_reports(sequence.id),
                    format_window(sequence.window_start, sequence.window_end))
            for sequence in all_sequences()]


@dataclass
class ReaderPlace:
    email: str
    state: str
    entered_at: datetime
    passed: int  # steps passed
    current_step: int | None  # the position of the step in the ledger now


def readers(sequence: Sequence, limit: int = 200) -> list[ReaderPlace]:
    """The sequence's readers, newest entry first, and where each is."""
    return [ReaderPlace(email, state.value, entered_at, passed, current)
            for email, state, entered_at, passed, current in db.session.execute(
                select(Subscriber.email, Enrolment.state, Enrolment.entered_at,
                       Enrolment.passed_position, SequenceStep.position)
                .join(Subscriber, Subscriber.id == Enrolment.subscriber_id)
                .outerjoin(SequenceStep, SequenceStep.id == Enrolment.current_step_id)
                .where(Enrolment.sequence_id == sequence.id)
                .order_by(Enrolment.entered_at.desc(), Enrolment.id.desc()).limit(limit))]
