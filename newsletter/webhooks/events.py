"""Webhook events: written in the transaction of the change they report (an outbox).

``record(event_type, data)`` is the one function other modules call. It adds the event
and one delivery row per enabled endpoint that listens to ``event_type`` to the current
transaction and publishes their tasks after commit; it never commits. When no endpoint
listens, nothing is written. On the send's autocommit connection (``connection=``) the
rows commit with the statement and the beat's sweeper publishes them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, insert, select, update

from newsletter import jobs
from newsletter.extensions import db
from newsletter.models import (
    Subscriber,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from newsletter.queue import enqueue_after_commit

SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
SUBSCRIBER_BOUNCED = "subscriber.bounced"
SUBSCRIBER_COMPLAINED = "subscriber.complained"
ISSUE_SENT = "issue.sent"
SEQUENCE_STEP_SENT = "sequence.step_sent"
EVENT_TYPES = (SUBSCRIBER_CONFIRMED, SUBSCRIBER_UNSUBSCRIBED, SUBSCRIBER_BOUNCED,
               SUBSCRIBER_COMPLAINED, ISSUE_SENT, SEQUENCE_STEP_SENT)


def _listening(executor, event_type: str) -> list[int]:
    rows = executor.execute(select(WebhookEndpoint.id, WebhookEndpoint.events).where(
        WebhookEndpoint.disabled_at.is_(None)).order_by(WebhookEndpoint.id))
    return [endpoint_id for endpoint_id, wanted in rows if event_type in (wanted or [])]


def listened(event_type: str) -> bool:
    """Whether any enabled endpoint wants ``event_type``: lets a caller skip building
    payloads nobody will get."""
    return bool(_listening(db.session, event_type))


def record(event_type: str, data: dict[str, Any], *, subscriber_id: int | None = None,
           connection: Connection | None = None) -> int | None:
    """Owe ``event_type`` with ``data`` (JSON-serialisable) to every endpoint that listens;
    returns the event's row id, or None when nobody listens. ``subscriber_id``: the reader
    the event is about, so erasing them erases it too. Part of the caller's transaction
    (or ``connection``'s)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    executor = connection if connection is not None else db.session
    endpoint_ids = _listening(executor, event_type)
    if not endpoint_ids:
        return None
    now = utcnow()
    public_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps({"id": public_id, "type": event_type,
                       "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "data": data},
                      separators=(",", ":"), ensure_ascii=False)
    event_id = executor.execute(insert(WebhookEvent).values(
        public_id=public_id, type=event_type, subscriber_id=subscriber_id, body=body,
        created_at=now)).inserted_primary_key[0]
    for endpoint_id in endpoint_ids:
        delivery_id = executor.execute(insert(WebhookDelivery).values(
            event_id=event_id, endpoint_id=endpoint_id, status=WebhookDeliveryStatus.PENDING,
            attempts=0, owed_since=now)).inserted_primary_key[0]
        if connection is None:
            enqueue_after_commit(jobs.DELIVER_WEBHOOK, delivery_id)
    return event_id


def record_subscriber(event_type: str, subscriber_id: int, source: str,
                      detail: str | None = None, *,
                      connection: Connection | None = None) -> int | None:
    """A ``subscriber.*`` event: who (id, address as it is now), and how it came about."""
    executor = connection if connection is not None else db.session
    if not _listening(executor, event_type):
        return None
    email = executor.execute(select(Subscriber.email).where(
        Subscriber.id == subscriber_id)).scalar_one()
    return record(event_type, {"subscriber": {"id": subscriber_id, "email": email},
                               "source": str(source), "detail": detail},
                  subscriber_id=subscriber_id, connection=connection)


def forget_subscriber(subscriber_id: int) -> None:
    """Erasure: the reader's events keep their id and type, and lose what named them
    (an event still owed is sent with the address gone)."""
    for event in db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.subscriber_id == subscriber_id)):
        message = json.loads(event.body)
        message["data"] = {"subscriber": {"id": subscriber_id, "erased": True}}
        db.session.execute(update(WebhookEvent).where(WebhookEvent.id == event.id).values(
            body=json.dumps(message, separators=(",", ":")), subscriber_id=None))
