"""GDPR: everything held about one reader, and erasure that keeps them suppressed."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app
from sqlalchemy import select, update

from newsletter.extensions import db
from newsletter.models import (
    ConsentEvent,
    Delivery,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
    new_token_nonce,
    utcnow,
)
from newsletter.services import bounces

ERASED_PREFIX = "erased:"


def suppression_key(email_normalized: str) -> str:
    """A keyed hash of an erased address: it cannot be read back, but a new
    subscribe request for the same address can be recognised and ignored."""
    secret = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(secret, email_normalized.encode(), hashlib.sha256).hexdigest()
    return ERASED_PREFIX + digest


def is_suppressed(email_normalized: str) -> bool:
    return db.session.scalar(select(Subscriber.id).where(
        Subscriber.email_normalized == suppression_key(email_normalized))) is not None


def export_subscriber(subscriber_id: int) -> dict | None:
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None

    def when(moment):
        return moment.isoformat() if moment else None

    deliveries = db.session.execute(
        select(Delivery.digest_id, Delivery.status, Delivery.sent_at)
        .where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id)).all()
    mails = db.session.scalars(select(OutboxMail).where(
        OutboxMail.subscriber_id == subscriber_id).order_by(OutboxMail.id)).all()
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "created_at": when(subscriber.created_at),
        "confirmed_at": when(subscriber.confirmed_at),
        "unsubscribed_at": when(subscriber.unsubscribed_at),
        "consent_events": [
            {"action": event.action.value, "source": event.source.value, "email": event.email,
             "ip_address": event.ip_address, "user_agent": event.user_agent,
             "detail": event.detail, "at": when(event.created_at)}
            for event in subscriber.consent_events],
        "mails": [{"kind": mail.template.value, "requested_at": when(mail.requested_at),
                   "sent_at": when(mail.sent_at)} for mail in mails],
        "digests": [{"issue": digest_id, "status": status.value, "sent_at": when(sent_at)}
                    for digest_id, status, sent_at in deliveries],
    }


def erase_subscriber(subscriber_id: int) -> bool:
    """Remove personal data; keep the row (the ledger points at it) under a hash."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email_normalized.startswith(ERASED_PREFIX):
        return False
    subscriber.email_normalized = suppression_key(subscriber.email_normalized)
    subscriber.email = f"erased-{subscriber.id}@erased.invalid"
    subscriber.name = None
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = subscriber.unsubscribed_at or utcnow()
    subscriber.token_nonce = new_token_nonce()
    db.session.execute(
        update(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
        .values(email=subscriber.email, ip_address=None, user_agent=None))
    bounces.forget(subscriber_id)  # bounce reports name the address too
    db.session.commit()
    return True
