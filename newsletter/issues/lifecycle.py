"""An issue's lifecycle: the one writer of ``Digest.status``.

Every change is one conditional UPDATE (``WHERE id = ? AND status IN (allowed
from)``), so two editors clicking at once, or a click racing a batch, make one
change; the loser learns it from the row count. What a move sets besides the
status (when it started or finished, why it paused) is written in the same
statement. A new issue is inserted as draft or scheduled (``digests.compose``). A
move other systems hear of (``Transition.webhook``) owes its webhook event in the
same transaction.

Statements that must ask "is this issue still sending?" as part of their own SQL
(the send loop's hot statements) get that fragment from here too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import case, func, select, update

from newsletter.extensions import db
from newsletter.models import Delivery, Digest, DigestStatus, utcnow
from newsletter.webhooks import events as webhook_events

DRAFT, SCHEDULED, SENDING, PAUSED, SENT, CANCELLED = (
    DigestStatus.DRAFT, DigestStatus.SCHEDULED, DigestStatus.SENDING, DigestStatus.PAUSED,
    DigestStatus.SENT, DigestStatus.CANCELLED)

# A by-hand issue's key; freed on cancel so the same articles can make a new issue.
MANUAL_KEY_PREFIX = "manual-"


class Move(enum.Enum):
    EDIT = "edit"  # a scheduled issue's words or time change; it stays scheduled
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    FINISH = "finish"  # every delivery row is final
    CANCEL = "cancel"
    DISCARD = "discard"  # cancel, but only before it started


@dataclass(frozen=True)
class Transition:
    sources: frozenset[DigestStatus]
    target: DigestStatus
    stamps: tuple[str, ...] = ()  # columns set to the moment of the move
    clears: tuple[str, ...] = ()  # columns set to NULL
    frees_manual_key: bool = False
    takes: tuple[str, ...] = ()  # columns the caller supplies
    webhook: str | None = None  # the webhook event it owes


# The allowed transitions: a move not listed for an issue's status is refused.
TRANSITIONS: dict[Move, Transition] = {
    Move.EDIT: Transition(frozenset({SCHEDULED}), SCHEDULED,
                          takes=("subject", "headline", "intro", "send_at",
                                 "reader_local_time")),
    Move.START: Transition(frozenset({DRAFT, SCHEDULED}), SENDING, stamps=("started_at",)),
    Move.PAUSE: Transition(frozenset({SENDING}), PAUSED, takes=("pause_reason",)),
    # Resuming a send the guard paused also acknowledges the guard's figures.
    Move.RESUME: Transition(frozenset({PAUSED}), SENDING, clears=("pause_reason",),
                            takes=("guard_acknowledged_at",)),
    Move.FINISH: Transition(frozenset({SENDING}), SENT, stamps=("finished_at",),
                            webhook=webhook_events.ISSUE_SENT),
    Move.CANCEL: Transition(frozenset({DRAFT, SCHEDULED, SENDING, PAUSED}), CANCELLED,
                            stamps=("finished_at",), frees_manual_key=True),
    Move.DISCARD: Transition(frozenset({DRAFT, SCHEDULED}), CANCELLED,
                             stamps=("finished_at",), frees_manual_key=True),
}

# Issues whose send has begun and may be taken up again.
UNDER_WAY = frozenset({SENDING, PAUSED})
NOT_STARTED = TRANSITIONS[Move.START].sources


def move(digest_id: int, what: Move, *, where=None, **values) -> bool:
    """Perform ``what`` on one issue if its status allows it; True when it changed.

    ``values``: the columns this move takes from its caller (``Transition.takes``);
    ``where``: one more condition the row must meet (finishing needs no open rows).
    Part of the caller's transaction.
    """
    transition = TRANSITIONS[what]
    unknown = set(values) - set(transition.takes)
    if unknown:
        raise TypeError(f"{what.value} does not set {', '.join(sorted(unknown))}")
    now = utcnow()
    values.update({column: now for column in transition.stamps})
    values.update({column: None for column in transition.clears})
    if transition.frees_manual_key:
        values["period_key"] = case((Digest.period_key.startswith(MANUAL_KEY_PREFIX), None),
                                    else_=Digest.period_key)
    conditions = [Digest.id == digest_id, Digest.status.in_(transition.sources)]
    if where is not None:
        conditions.append(where)
    moved = db.session.execute(
        update(Digest).where(*conditions)
        .values(status=transition.target, **values)
    ).rowcount == 1
    if moved and transition.webhook:
        _owe_webhook(transition.webhook, digest_id)
    return moved


def _owe_webhook(event_type: str, digest_id: int) -> None:
    digest = db.session.get(Digest, digest_id)
    db.session.refresh(digest)
    deliveries = dict(db.session.execute(
        select(Delivery.status, func.count()).where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status)).all())
    webhook_events.record(event_type, {"issue": {
        "id": digest.id, "subject": digest.subject, "status": digest.status.value,
        "started_at": digest.started_at and digest.started_at.isoformat(),
        "finished_at": digest.finished_at and digest.finished_at.isoformat(),
        "deliveries": {str(status.value if hasattr(status, "value") else status): count
                       for status, count in deliveries.items()}}})


def is_status_sql(status: DigestStatus, digest_param: str = "digest_id") -> str:
    """SQL that is true while the issue named by ``:digest_param`` has ``status``: for
    statements that check it in the same round trip as their own write."""
    return (f"EXISTS (SELECT 1 FROM {Digest.__tablename__} WHERE "
            f"{Digest.__tablename__}.id = :{digest_param} AND "
            f"{Digest.__tablename__}.status = '{DigestStatus(status).value}')")
