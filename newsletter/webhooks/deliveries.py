"""A webhook delivery's status: the one module that writes it.

One row per event and endpoint. A worker claims the row (``claim``: a lease and a
claim token, committed by the task before any request goes out), posts it
(``sender.post``, outside any transaction) and records the answer (``finish``,
naming its claim, so a worker whose lease ran out writes nothing). A failed attempt
is retried with exponential backoff, the same event id and the same bytes, until
RETRY_WINDOW after it became owed; an endpoint failing that long is disabled and
the owners are told. The beat's sweeper re-publishes rows whose task was lost.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from newsletter import jobs
from newsletter.editors import accounts, editor_mail
from newsletter.extensions import db
from newsletter.models import (
    EditorMailKind,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from newsletter.queue import enqueue_after_commit, send_task_now
from newsletter.webhooks import endpoints, sender
from newsletter.webhooks.sender import Answer

PENDING, SENDING, RETRYING = (WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.SENDING,
                              WebhookDeliveryStatus.RETRYING)
DELIVERED, FAILED = WebhookDeliveryStatus.DELIVERED, WebhookDeliveryStatus.FAILED
MAX_RETRY_DELAY = 3600.0
SWEEP_GRACE = timedelta(seconds=30)  # fresh rows are left to the task published with them


class Step(enum.Enum):
    CLAIM = "claim"  # a worker takes it: owed, due, or a dead worker's claim
    SUCCEED = "succeed"  # 2xx
    RETRY = "retry"  # failed; try again at next_attempt_at
    GIVE_UP = "give_up"  # failed, and the retry window is over
    DROP = "drop"  # its endpoint was disabled
    RESEND = "resend"  # an editor asks for it again


# The allowed changes: (from, to). Anything else is refused.
TRANSITIONS: dict[Step, tuple[frozenset[WebhookDeliveryStatus], WebhookDeliveryStatus]] = {
    Step.CLAIM: (frozenset({PENDING, RETRYING, SENDING}), SENDING),
    Step.SUCCEED: (frozenset({SENDING}), DELIVERED),
    Step.RETRY: (frozenset({SENDING}), RETRYING),
    Step.GIVE_UP: (frozenset({SENDING}), FAILED),
    Step.DROP: (frozenset({PENDING, RETRYING}), FAILED),
    Step.RESEND: (frozenset({DELIVERED, FAILED, RETRYING}), PENDING),
}


def _move(step: Step, *conditions, **values) -> int:
    """One conditional UPDATE; how many rows it changed."""
    sources, target = TRANSITIONS[step]
    return db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status.in_(sorted(sources)), *conditions)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)).rowcount


def _lease() -> timedelta:
    # Longer than an attempt can take (the deadline), with room for the database.
    return timedelta(seconds=current_app.config["WEBHOOK_DEADLINE"] * 2 + 30)


def _claimable(now: datetime):
    """Owed and due: never tried, a retry whose time has come, or a claim whose lease
    ran out (its worker died)."""
    return or_(WebhookDelivery.status == PENDING,
               and_(WebhookDelivery.status == RETRYING, WebhookDelivery.next_attempt_at <= now),
               and_(WebhookDelivery.status == SENDING,
                    WebhookDelivery.claimed_at < now - _lease()))


@dataclass(frozen=True)
class Attempt:
    """A claimed delivery: everything the POST needs, read before the claim commits."""

    delivery_id: int
    claim: str
    endpoint_id: int
    url: str
    secret: bytes | None
    event_id: str
    body: bytes


def claim(delivery_id: int) -> Attempt | None:
    """Take one delivery if it is owed and due and its endpoint is enabled; None when
    another worker has it, it is done, or not due yet. The task commits the claim
    before posting, so a duplicate task finds it taken."""
    now = utcnow()
    token = secrets.token_hex(8)
    enabled = select(WebhookEndpoint.id).where(
        WebhookEndpoint.id == WebhookDelivery.endpoint_id,
        WebhookEndpoint.disabled_at.is_(None)).exists()
    if _move(Step.CLAIM, WebhookDelivery.id == delivery_id, _claimable(now), enabled,
             claim=token, claimed_at=now, attempts=WebhookDelivery.attempts + 1) != 1:
        return None
    delivery = db.session.get(WebhookDelivery, delivery_id)
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    event = db.session.get(WebhookEvent, delivery.event_id)
    return Attempt(delivery_id, token, endpoint.id, endpoint.url,
                   endpoints.unsealed_secret(endpoint), event.public_id, event.body.encode())


def post(attempt: Attempt) -> Answer:
    """The attempt's POST; no database work, so no transaction is held open."""
    if attempt.secret is None:
        return Answer(False, None, 0, "the secret opens with no key of NEWSLETTER_TOTP_KEY "
                                      "(or its fallbacks): nothing was sent")
    return sender.post(attempt.url, attempt.body, attempt.secret, attempt.event_id,
                       endpoints.fetch_policy(current_app.config))


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
    first = current_app.config["WEBHOOK_RETRY_DELAY"]
    return min(first * 2 ** min(attempts - 1, 30), max(first, MAX_RETRY_DELAY))


def finish(attempt: Attempt, answer: Answer) -> float | None:
    """Record the answer under ``attempt``'s claim; returns the seconds after which the
    task should run again (a retry), or None. Part of the caller's transaction."""
    now = utcnow()
    mine = (WebhookDelivery.id == attempt.delivery_id, WebhookDelivery.claim == attempt.claim)
    seen = {"last_attempt_at": now, "last_status_code": answer.status_code,
            "last_latency_ms": answer.latency_ms, "claim": None, "claimed_at": None}
    if answer.ok:
        if _move(Step.SUCCEED, *mine, delivered_at=now, last_error=None,
                 next_attempt_at=None, **seen):
            endpoints.delivered(attempt.endpoint_id)
        return None
    delivery = db.session.get(WebhookDelivery, attempt.delivery_id, populate_existing=True)
    if delivery is None or delivery.claim != attempt.claim:
        return None  # its endpoint was removed meanwhile, or our lease ran out
    window = timedelta(seconds=current_app.config["WEBHOOK_RETRY_WINDOW"])
    delay = retry_delay(delivery.attempts)
    error = answer.error or "failed"
    if delivery.owed_since + window < now + timedelta(seconds=delay):
        moved = _move(Step.GIVE_UP, *mine, next_attempt_at=None,
                      last_error=f"given up after {delivery.attempts} attempts: {error}"[:500],
                      **seen)
        delay = None
    else:
        moved = _move(Step.RETRY, *mine, next_attempt_at=now + timedelta(seconds=delay),
                      last_error=error, **seen)
    if moved:
        endpoints.failed_attempt(attempt.endpoint_id)
        _disable_if_failing_too_long(attempt.endpoint_id, now, window)
    return delay if moved else None


def _disable_if_failing_too_long(endpoint_id: int, now: datetime, window: timedelta) -> None:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
    if endpoint is None or endpoint.failing_since is None or endpoint.failing_since > now - window:
        return
    hours = window.total_seconds() / 3600
    if not endpoints.disable(endpoint_id, f"every attempt failed for {hours:g} h"):
        return  # another worker disabled it, and told the owners
    _move(Step.DROP, WebhookDelivery.endpoint_id == endpoint_id, next_attempt_at=None,
          last_error="endpoint disabled")
    for owner in accounts.owners():
        editor_mail.owe(owner.id, EditorMailKind.WEBHOOK_DISABLED)


def resend(delivery_id: int, endpoint_id: int) -> bool:
    """Owe it again now (same event id and body), with a fresh retry window; False when
    it is not this endpoint's, is on its way, or the endpoint is disabled."""
    now = utcnow()
    enabled = select(WebhookEndpoint.id).where(
        WebhookEndpoint.id == WebhookDelivery.endpoint_id,
        WebhookEndpoint.disabled_at.is_(None)).exists()
    if _move(Step.RESEND, WebhookDelivery.id == delivery_id,
             WebhookDelivery.endpoint_id == endpoint_id, enabled, owed_since=now,
             next_attempt_at=None, claim=None, claimed_at=None) != 1:
        return False
    enqueue_after_commit(jobs.DELIVER_WEBHOOK, delivery_id)
    return True


def log(endpoint_id: int, limit: int = 100) -> list[tuple[WebhookDelivery, str, str]]:
    """The endpoint's latest deliveries, newest first, with each event's id and type."""
    rows = db.session.execute(
        select(WebhookDelivery, WebhookEvent.public_id, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc()).limit(limit))
    return [tuple(row) for row in rows]


def owed_ids(limit: int = 1000) -> list[int]:
    """Deliveries whose task was lost (Redis down, a worker gone): owed and due, and
    not fresh (those are the task's published with them)."""
    now = utcnow()
    return list(db.session.scalars(
        select(WebhookDelivery.id)
        .where(_claimable(now),
               or_(WebhookDelivery.status != PENDING,
                   WebhookDelivery.owed_since < now - SWEEP_GRACE))
        .order_by(WebhookDelivery.id).limit(limit)))


def enqueue_owed() -> int:
    return sum(send_task_now(jobs.DELIVER_WEBHOOK, delivery_id) for delivery_id in owed_ids())
