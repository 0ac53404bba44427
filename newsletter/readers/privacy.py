"""GDPR: everything held about one reader, and erasure that keeps them suppressed."""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import current_app
from sqlalchemy import delete, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.analytics import clicks
from newsletter.bounces import intake
from newsletter.config import ENV_PREFIX, ConfigError
from newsletter.delivery import ledger
from newsletter.extensions import db
from newsletter.models import (
    AddressChange,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Delivery,
    KeyFingerprint,
    OutboxMail,
    Subscriber,
    utcnow,
)
from newsletter.readers import status, sunset
from newsletter.webhooks import events as webhook_events

log = logging.getLogger(__name__)
ERASED_PREFIX = "erased:"


def _keyed(secret: str, email_normalized: str) -> str:
    digest = hmac.new(secret.encode(), email_normalized.encode(), hashlib.sha256).hexdigest()
    return ERASED_PREFIX + digest


def suppression_key(email_normalized: str) -> str:
    """A keyed hash of an erased address: it cannot be read back, but a new
    subscribe request for the same address can be recognised and ignored. Keyed
    with its own pepper (SUPPRESSION_KEY), so rotating SECRET_KEY changes nothing."""
    if not current_app.extensions.get(_CHECKED):
        # A process that could not check at start (database down, schema older).
        check_suppression_key()
    return _keyed(current_app.config["SUPPRESSION_KEY"], email_normalized)


SUPPRESSION = "suppression"
_CHECKED = "newsletter.suppression_key_checked"


def key_fingerprint(key: str) -> str:
    """Names a key without revealing it (an HMAC of a constant: the key is 256 bits)."""
    return hmac.new(key.encode(), b"newsletter.key-fingerprint", hashlib.sha256).hexdigest()


def check_suppression_key() -> None:
    """Refuse a SUPPRESSION_KEY other than the one this database's erasures were hashed
    with; the first process to start records its fingerprint (in the caller's
    transaction). Raises ConfigError. Before the table exists (a database not yet
    upgraded) there is nothing to check against, and it is checked again at next use."""
    if not inspect(db.session.connection()).has_table(KeyFingerprint.__tablename__):
        return
    current = key_fingerprint(current_app.config["SUPPRESSION_KEY"])
    stored = _stored_fingerprint()
    if stored is None:
        dialect = db.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        db.session.execute(insert(KeyFingerprint).values(
            name=SUPPRESSION, fingerprint=current, created_at=utcnow()).on_conflict_do_nothing())
        stored = _stored_fingerprint()  # another process may have been first
    if stored != current:
        raise ConfigError(
            f"{ENV_PREFIX}SUPPRESSION_KEY is not the key this database's erased addresses "
            "were hashed with; set the one it was first started with (from your secret store "
            "or the backup's): with another key erased readers could subscribe again")
    current_app.extensions[_CHECKED] = True


def _stored_fingerprint() -> str | None:
    return db.session.scalar(select(KeyFingerprint.fingerprint)
                             .where(KeyFingerprint.name == SUPPRESSION))


def legacy_suppression_keys(email_normalized: str) -> list[str]:
    """Hashes made before the pepper existed were keyed with SECRET_KEY: they are
    matched with the current key and every fallback, and re-keyed when seen."""
    config = current_app.config
    return [_keyed(key, email_normalized)
            for key in (config["SECRET_KEY"], *config["SECRET_KEY_FALLBACKS"])]


def suppression_keys(email_normalized: str) -> list[str]:
    return [suppression_key(email_normalized), *legacy_suppression_keys(email_normalized)]


def is_suppressed(email_normalized: str) -> bool:
    found = db.session.execute(select(Subscriber.id, Subscriber.email_normalized).where(
        Subscriber.email_normalized.in_(suppression_keys(email_normalized)))).first()
    if found is None:
        return False
    current = suppression_key(email_normalized)
    if found.email_normalized != current:  # a legacy hash: re-key it with the pepper
        # Written with the caller's transaction (a worker's decision holds a mailbox
        # lock until it commits).
        db.session.execute(update(Subscriber).where(Subscriber.id == found.id)
                           .values(email_normalized=current))
    return True


def export_subscriber(subscriber_id: int) -> dict | None:
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None

    def when(moment):
        return moment.isoformat() if moment else None

    deliveries = db.session.execute(
        select(Delivery.digest_id, Delivery.status, Delivery.sent_at, Delivery.attempts,
               Delivery.last_error)
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
                   "sent_at": when(mail.sent_at), "attempts": mail.attempts,
                   "last_error": mail.last_error} for mail in mails],
        "digests": [{"issue": digest_id, "status": status.value, "sent_at": when(sent_at),
                     "attempts": attempts, "last_error": last_error}
                    for digest_id, status, sent_at, attempts, last_error in deliveries],
    }


ADDRESS_ACTIONS = (ConsentAction.ADDRESS_CHANGE_REQUESTED, ConsentAction.ADDRESS_CHANGED,
                   ConsentAction.ADDRESS_CHANGE_UNDONE)


def erase_subscriber(subscriber_id: int) -> bool:
    """Remove personal data; keep the row (the ledger points at it) under a hash."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email_normalized.startswith(ERASED_PREFIX):
        return False
    # The hash and its key's fingerprint are written together, so no database holds an
    # erasure that a process with another key could start on.
    check_suppression_key()
    erased_email = f"erased-{subscriber.id}@erased.invalid"
    db.session.execute(
        update(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
        .values(email=erased_email, ip_address=None, user_agent=None))
    # Editors' notes and SMTP replies are free text that may name the reader.
    db.session.execute(
        update(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id,
                                   ConsentEvent.source.in_([ConsentSource.EDITOR,
                                                            ConsentSource.BOUNCE]))
        .values(detail=None))
    db.session.execute(  # an address change names the other address
        update(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id,
                                   ConsentEvent.action.in_(ADDRESS_ACTIONS))
        .values(detail=None))
    # Any status becomes unsubscribed; the event is written after the scrubbing above.
    if not status.change(subscriber_id, status.Change.ERASE, status.Origin(ConsentSource.EDITOR),
                         ~Subscriber.email_normalized.startswith(ERASED_PREFIX),
                         detail="personal data erased; the address stays suppressed",
                         email_normalized=suppression_key(subscriber.email_normalized),
                         email=erased_email, name=None, pending_email=None):
        return False  # erased meanwhile
    # SMTP replies quote the address ("550 <ada@example.com>: no such user"): free
    # text tied to the reader goes too; the rows stay (the ledger's counts need them).
    ledger.erase_errors(subscriber_id)
    db.session.execute(update(OutboxMail).where(OutboxMail.subscriber_id == subscriber_id)
                       .values(last_error=None))
    intake.forget(subscriber_id)  # bounce reports name the address too
    clicks.forget_reader(subscriber_id)  # clicks stay counted, no longer theirs
    sunset.forget_reader(subscriber_id)
    # Past addresses and their undo links; a notice still owed is then skipped.
    db.session.execute(delete(AddressChange).where(AddressChange.subscriber_id == subscriber_id))
    webhook_events.forget_subscriber(subscriber_id)
    log.info("subscriber %s erased", subscriber_id)
    return True
