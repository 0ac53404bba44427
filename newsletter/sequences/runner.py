"""The beat's sequence run: enrol who entered, let go who left, move readers on.

For each sequence, in the caller's transaction:

1. readers who entered since the last run are enrolled (``enrolment.enrol_entrants``);
2. enrolled readers who are no longer active leave;
3. a reader whose current step's ledger row is final advances past it (and, past
   the last step, completes);
4. a waiting reader whose next step is due gets a pending ledger row for it,
   written through ``delivery/ledger.py`` like any issue's; the step's batch task
   is enqueued after commit, so the send loop, the relay, the guard and the
   sweeper treat it as they treat an issue.

One row per (step, reader) in the ledger (unique): a step reaches a reader at most
once however often this runs, and step N+1 is only written once step N's row is
final, so steps arrive in order.

Paused readers: a step that falls due during a pause waits and goes when the pause
ends (the timing counts from entry, so what fell due meanwhile goes at once, one
step per run). Quiet hours likewise: a step due outside the sequence's send window
waits for the run that finds the window open (``quiet_hours``).

Languages: each reader's row names the step's copy in their language (a
``DigestVariant`` of the step's issue, one per language), so a worker renders the
step once per language, as it renders an issue once per copy.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from newsletter import jobs
from newsletter.delivery import ledger
from newsletter.extensions import db
from newsletter.mail.language import language_of
from newsletter.models import (
    OPEN_DELIVERY_STATUSES,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    DigestVariant,
    Enrolment,
    Sequence,
    SequenceStep,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.queue import enqueue_after_commit
from newsletter.sequences import enrolment
from newsletter.sequences.enrolment import Move
from newsletter.sequences.quiet_hours import Window
from newsletter.sequences.step_mail import words_in
from newsletter.sequences.steps import steps_of
from newsletter.webhooks import events as webhook_events

log = logging.getLogger(__name__)
CHUNK = 1000  # enrolments read and moved at a time


def sequence_ids() -> list[int]:
    return list(db.session.scalars(select(Sequence.id).order_by(Sequence.id)))


def run(sequence_id: int, now: datetime | None = None) -> dict[str, int]:
    """One run over one sequence; returns what it did (counts by kind)."""
    now = now or utcnow()
    sequence = db.session.get(Sequence, sequence_id)
    if sequence is None:
        return {}
    steps = steps_of(sequence_id)
    done = {"entered": enrolment.enrol_entrants(sequence, now), "left": _leave(sequence_id)}
    done["advanced"] = _advance(sequence_id, steps)
    # A step whose sending an editor cancelled (``digest cancel``) is passed over.
    cancelled = set(db.session.scalars(select(Digest.id).where(
        Digest.id.in_([step.digest_id for step in steps]),
        Digest.status == DigestStatus.CANCELLED)))
    done["completed"], done["queued"] = _queue_due(
        sequence_id, [step for step in steps if step.digest_id not in cancelled], now,
        Window(sequence, now))
    return done


def _leave(sequence_id: int) -> int:
    gone = list(db.session.scalars(
        select(Enrolment.id).join(Subscriber, Subscriber.id == Enrolment.subscriber_id)
        .where(Enrolment.sequence_id == sequence_id,
               Enrolment.state.in_(enrolment.IN_SEQUENCE),
               Subscriber.status != SubscriberStatus.ACTIVE)))
    return len(enrolment.move(gone, Move.LEAVE))


def _advance(sequence_id: int, steps: list[SequenceStep]) -> int:
    """Readers whose current step's row is final move past it. Read step by step and in
    chunks of readers, each a seek on the ledger's unique (issue, reader) index, so the
    cost follows the readers in flight, never the step's whole history."""
    advanced = 0
    for step in steps:
        after = 0
        while True:
            sending = dict(db.session.execute(
                select(Enrolment.subscriber_id, Enrolment.id)
                .where(Enrolment.sequence_id == sequence_id,
                       Enrolment.state == enrolment.SENDING,
                       Enrolment.current_step_id == step.id, Enrolment.id > after)
                .order_by(Enrolment.id).limit(CHUNK)).all())
            if not sending:
                break
            after = max(sending.values())
            final = db.session.execute(
                select(Delivery.subscriber_id, Delivery.status)
                .where(Delivery.digest_id == step.digest_id,
                       Delivery.subscriber_id.in_(sorted(sending)),
                       Delivery.status.not_in(OPEN_DELIVERY_STATUSES))).all()
            advanced += len(enrolment.move([sending[reader] for reader, _ in final],
                                           Move.ADVANCE, passed_position=step.position))
            sent = [reader for reader, status in final if status == DeliveryStatus.SENT]
            if sent:
                steps_sent(step.id, sent)
    return advanced


def steps_sent(step_id: int, subscriber_ids: list[int]) -> None:
    """``sequence.step_sent`` events, one per reader, in the transaction that moves
    these readers past a step the ledger recorded sent."""
    log.info("sequence step %s sent to %d reader(s)", step_id, len(subscriber_ids))
    if not webhook_events.listened(webhook_events.SEQUENCE_STEP_SENT):
        return
    step = db.session.get(SequenceStep, step_id)
    sequence = db.session.get(Sequence, step.sequence_id)
    emails = dict(db.session.execute(select(Subscriber.id, Subscriber.email).where(
        Subscriber.id.in_(subscriber_ids))).all())
    for subscriber_id in subscriber_ids:
        webhook_events.record(webhook_events.SEQUENCE_STEP_SENT, {
            "sequence": {"id": sequence.id, "name": sequence.name},
            "step": {"id": step.id, "position": step.position, "subject": step.subject},
            "subscriber": {"id": subscriber_id, "email": emails.get(subscriber_id)},
        }, subscriber_id=subscriber_id)


def _queue_due(sequence_id: int, steps: list[SequenceStep], now: datetime,
               window: Window) -> tuple[int, int]:
    """Waiting readers: past the last step, complete; next step due (and the window
    open on their clock), a ledger row. Returns (completed, queued)."""
    completed = queued = 0
    last = steps[-1].position if steps else 0
    after = 0
    languages: dict[str | None, str] = {}  # a reader's language -> the one they get
    while True:
        waiting = db.session.execute(
            select(Enrolment.id, Enrolment.subscriber_id, Enrolment.entered_at,
                   Enrolment.passed_position, Subscriber.language, Subscriber.timezone)
            .join(Subscriber, Subscriber.id == Enrolment.subscriber_id)
            .where(Enrolment.sequence_id == sequence_id, Enrolment.state == enrolment.WAITING,
                   Enrolment.id > after,
                   or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now))
            .order_by(Enrolment.id).limit(CHUNK)).all()
        if not waiting:
            return completed, queued
        after = waiting[-1].id
        finished = [row.id for row in waiting if steps and row.passed_position >= last]
        completed += len(enrolment.move(finished, Move.COMPLETE))
        # step: enrolment -> (reader, language)
        due: dict[int, dict[int, tuple[int, str]]] = defaultdict(dict)
        for row in waiting:
            step = next((step for step in steps if step.position > row.passed_position), None)
            if (step is not None and row.entered_at + timedelta(seconds=step.delay_seconds)
                    <= now and window.open_for(row.timezone)):
                if row.language not in languages:
                    languages[row.language] = language_of(row.language)
                due[step.id][row.id] = (row.subscriber_id, languages[row.language])
        for step in steps:
            if due[step.id]:
                queued += _queue(step, due[step.id])


def _queue(step: SequenceStep, readers: dict[int, tuple[int, str]]) -> int:
    """Queue these enrolments (enrolment id -> (reader id, language)) on ``step`` and
    write their ledger rows, each naming the step's copy in the reader's language. A
    reader who has a row of this step already (a reordered step) keeps it: a step is
    never written, so never sent, twice."""
    moved = enrolment.move(list(readers), Move.QUEUE, current_step_id=step.id)
    if moved:
        copies = _copies(step, {readers[enrolment_id][1] for enrolment_id in moved})
        ledger.add_rows([{"digest_id": step.digest_id,
                          "subscriber_id": readers[enrolment_id][0], "attempts": 0,
                          "status": DeliveryStatus.PENDING,
                          "variant_id": copies[readers[enrolment_id][1]], "last_error": None}
                         for enrolment_id in sorted(moved)], skip_existing=True)
        enqueue_after_commit(jobs.SEND_DIGEST_BATCH, step.digest_id)
    return len(moved)


def _copies(step: SequenceStep, languages: set[str]) -> dict[str, int]:
    """The step's copy (variant) id for each of these languages, made when first
    needed: a copy is a language, its words are read from the step when rendered."""
    found = dict(db.session.execute(
        select(DigestVariant.language, func.min(DigestVariant.id))
        .where(DigestVariant.digest_id == step.digest_id,
               DigestVariant.language.in_(sorted(languages)))
        .group_by(DigestVariant.language)).all())
    for language in sorted(languages - set(found)):
        variant = DigestVariant(digest_id=step.digest_id, topic_ids=[], article_ids=[],
                                language=language, subject=words_in(step, language)[0])
        db.session.add(variant)
        db.session.flush()
        found[language] = variant.id
    return found
