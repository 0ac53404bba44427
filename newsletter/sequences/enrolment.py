"""Where a reader is in a sequence: the one writer of ``Enrolment.state``.

A reader enters (confirmation, choosing the sequence's topic, or an editor's
``enroll --existing``) waiting for the first step. When a step is due, the
enrolment is queued (sending) with that step's ledger row; once the row is
final it advances (waiting for the next step) or, past the last step, completes.
A reader who unsubscribes, bounces or complains leaves. Every change is a
conditional UPDATE, so two runs racing make one change and the loser learns it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.extensions import db
from newsletter.models import (
    Enrolment,
    EnrolmentState,
    Sequence,
    Subscriber,
    SubscriberStatus,
    subscriber_topics,
    utcnow,
)

WAITING, SENDING, COMPLETED, LEFT = (EnrolmentState.WAITING, EnrolmentState.SENDING,
                                     EnrolmentState.COMPLETED, EnrolmentState.LEFT)


class Move(enum.Enum):
    ENROL = "enrol"  # a new row: the reader entered
    QUEUE = "queue"  # the next step is due: its ledger row is written
    ADVANCE = "advance"  # that row is final: wait for the next step
    COMPLETE = "complete"  # every step passed
    LEAVE = "leave"  # the reader is no longer active


@dataclass(frozen=True)
class Transition:
    sources: frozenset[EnrolmentState]  # empty: the row is new
    target: EnrolmentState
    takes: tuple[str, ...] = ()  # columns the caller supplies
    clears: tuple[str, ...] = ()


# The allowed transitions of an enrolment.
TRANSITIONS: dict[Move, Transition] = {
    Move.ENROL: Transition(frozenset(), WAITING),
    Move.QUEUE: Transition(frozenset({WAITING}), SENDING, takes=("current_step_id",)),
    Move.ADVANCE: Transition(frozenset({SENDING}), WAITING, takes=("passed_position",),
                             clears=("current_step_id",)),
    Move.COMPLETE: Transition(frozenset({WAITING}), COMPLETED),
    Move.LEAVE: Transition(frozenset({WAITING, SENDING}), LEFT, clears=("current_step_id",)),
}

IN_SEQUENCE = TRANSITIONS[Move.LEAVE].sources
# A confirmation stamped before a run but committed after it is still found by the next.
ENTRY_MARGIN = timedelta(minutes=10)


def move(enrolment_ids: Collection[int], what: Move, **values) -> list[int]:
    """Perform ``what`` on these enrolments where their state allows it; returns the
    ids that changed. Part of the caller's transaction."""
    transition = TRANSITIONS[what]
    if not transition.sources:
        raise ValueError(f"{what.value} makes new rows: use enrol_*")
    unknown = set(values) - set(transition.takes)
    if unknown:
        raise TypeError(f"{what.value} does not set {', '.join(sorted(unknown))}")
    if not enrolment_ids:
        return []
    values.update({column: None for column in transition.clears})
    return list(db.session.scalars(
        update(Enrolment)
        .where(Enrolment.id.in_(sorted(enrolment_ids)),
               Enrolment.state.in_(transition.sources))
        .values(state=transition.target, updated_at=utcnow(), **values)
        .returning(Enrolment.id)
        .execution_options(synchronize_session=False)))


def _enrol(sequence: Sequence, entered_at, *conditions) -> int:
    """Insert an enrolment (entered at ``entered_at``, a column or a moment) for each
    active reader meeting ``conditions`` who is not in the sequence yet."""
    now = utcnow()
    readers = select(
        literal(sequence.id), Subscriber.id, entered_at,
        literal(TRANSITIONS[Move.ENROL].target.value), literal(0),
        literal(now, Enrolment.updated_at.type),
    ).where(
        Subscriber.status == SubscriberStatus.ACTIVE, *conditions,
        ~exists().where(Enrolment.sequence_id == sequence.id,
                        Enrolment.subscriber_id == Subscriber.id))
    if sequence.topic_id is not None:
        readers = readers.where(exists().where(
            and_(subscriber_topics.c.subscriber_id == Subscriber.id,
                 subscriber_topics.c.topic_id == sequence.topic_id)))
    # A reader enrolled meanwhile by an overlapping run is left as it is; counted from
    # RETURNING (a driver's rowcount for INSERT ... SELECT may be -1).
    dialect_insert = (postgresql.insert if db.session.get_bind().dialect.name == "postgresql"
                      else sqlite.insert)
    return len(db.session.scalars(dialect_insert(Enrolment).from_select(
        ["sequence_id", "subscriber_id", "entered_at", "state", "passed_position",
         "updated_at"], readers)
        .on_conflict_do_nothing(index_elements=["sequence_id", "subscriber_id"])
        .returning(Enrolment.id)).all())


def enrol_entrants(sequence: Sequence, now: datetime) -> int:
    """Readers who entered since the sequence was created: who confirmed after it or,
    for a topic's sequence, who hold the topic and confirmed or chose it after it. They
    enter at the later of the two. Only readers who did so since the last look (less
    ENTRY_MARGIN) are read, so a run costs what entered, not the whole list."""
    since = sequence.created_at
    if sequence.entrants_seen_until is not None:
        since = max(since, sequence.entrants_seen_until - ENTRY_MARGIN)
    sequence.entrants_seen_until = now
    if sequence.topic_id is None:
        return _enrol(sequence, Subscriber.confirmed_at, Subscriber.confirmed_at >= since)
    chosen_at = (select(subscriber_topics.c.chosen_at)
                 .where(subscriber_topics.c.subscriber_id == Subscriber.id,
                        subscriber_topics.c.topic_id == sequence.topic_id)
                 .scalar_subquery())
    entered_at = case((Subscriber.confirmed_at.is_(None) | (chosen_at > Subscriber.confirmed_at),
                       chosen_at), else_=Subscriber.confirmed_at)
    return _enrol(sequence, entered_at, or_(Subscriber.confirmed_at >= since,
                                            chosen_at >= since))


def enrol_existing(sequence: Sequence, now: datetime) -> int:
    """Every active reader not in the sequence yet, entering now (only on an editor's
    explicit ``enroll --existing``)."""
    return _enrol(sequence, literal(now, Enrolment.entered_at.type))
