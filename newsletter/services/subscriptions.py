"""Subscribe, double opt-in confirmation and unsubscribe.

Every state change goes through a conditional UPDATE (``WHERE status = ...``),
so concurrent requests make exactly one change, and each change appends a
consent event in the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.extensions import db
from newsletter.mail.addresses import check_email, check_name
from newsletter.mail.tokens import (
    TokenInvalid,
    is_unsubscribe_key,
    read_confirm_token,
    read_legacy_unsubscribe_token,
)
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
    new_token_nonce,
    utcnow,
)
from newsletter.services import outbox, privacy


@dataclass(frozen=True)
class Origin:
    """Where a request came from: kept in the consent log as evidence."""

    source: ConsentSource
    ip_address: str | None = None
    user_agent: str | None = None


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    ALREADY_ACTIVE = "already_active"


class LinkUsed(TokenInvalid):
    """A genuine confirmation link whose moment has passed (used, or superseded)."""


def _log(subscriber: Subscriber, action: ConsentAction, origin: Origin, detail: str | None = None):
    db.session.add(ConsentEvent(
        subscriber_id=subscriber.id,
        action=action,
        source=origin.source,
        email=subscriber.email,
        ip_address=(origin.ip_address or None) and origin.ip_address[:45],
        user_agent=(origin.user_agent or None) and origin.user_agent[:512],
        detail=detail,
    ))


def find_subscriber(email_normalized: str) -> Subscriber | None:
    return db.session.scalar(
        select(Subscriber).where(Subscriber.email_normalized == email_normalized)
    )


def subscribe(email: object, name: object, origin: Origin) -> None:
    """Record a request to subscribe and, when allowed, owe a confirmation mail.

    Returns nothing on purpose: callers must answer identically whether the
    address was new, pending, active or unsubscribed. Raises InvalidAddress.
    """
    address = check_email(email)
    display_name = check_name(name)
    if privacy.is_suppressed(address.normalized):
        return  # erased at the reader's request: we keep no record and send nothing
    subscriber = find_subscriber(address.normalized)
    if subscriber is None:
        subscriber = Subscriber(email=address.given, email_normalized=address.normalized,
                                name=display_name, status=SubscriberStatus.PENDING)
        db.session.add(subscriber)
        try:
            db.session.flush()
        except IntegrityError:  # a concurrent request created the same address first
            db.session.rollback()
            subscriber = find_subscriber(address.normalized)
            assert subscriber is not None
    elif subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.PENDING
        subscriber.token_nonce = new_token_nonce()

    if subscriber.status == SubscriberStatus.PENDING and display_name:
        # Never let a third party rename a confirmed reader.
        subscriber.name = display_name

    _log(subscriber, ConsentAction.SUBSCRIBE_REQUESTED, origin)
    if subscriber.status == SubscriberStatus.PENDING and _may_send_confirmation(subscriber.id):
        outbox.owe(subscriber.id, MailTemplate.CONFIRM)
    db.session.commit()


def _may_send_confirmation(subscriber_id: int) -> bool:
    """At most CONFIRM_MAILS_PER_DAY per address, CONFIRM_MAIL_INTERVAL apart.

    This stops anyone from using our form to bomb a third party's inbox.
    """
    config = current_app.config
    since = utcnow() - timedelta(hours=24)
    count, latest = db.session.execute(
        select(func.count(OutboxMail.id), func.max(OutboxMail.requested_at)).where(
            OutboxMail.subscriber_id == subscriber_id,
            OutboxMail.template == MailTemplate.CONFIRM,
            OutboxMail.requested_at > since,
        )
    ).one()
    if count >= config["CONFIRM_MAILS_PER_DAY"]:
        return False
    interval = timedelta(seconds=config["CONFIRM_MAIL_INTERVAL"])
    return latest is None or utcnow() - latest >= interval


def _change_status(subscriber_id: int, status: SubscriberStatus, conditions: tuple,
                   **values) -> bool:
    """A conditional UPDATE: of concurrent callers exactly one sees True. The nonce
    rotates, so links issued before the change cannot replay it."""
    return db.session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, *conditions)
        .values(status=status, token_nonce=new_token_nonce(), updated_at=utcnow(), **values)
    ).rowcount == 1


def _erased(subscriber: Subscriber) -> bool:
    return subscriber.email_normalized.startswith(privacy.ERASED_PREFIX)


def subscriber_for_confirm_token(token: str) -> Subscriber:
    """The pending subscriber a link confirms, for the GET page; raises TokenInvalid."""
    claim = read_confirm_token(token)
    subscriber = db.session.get(Subscriber, claim.subscriber_id)
    if subscriber is None or _erased(subscriber):
        raise TokenInvalid("unknown subscriber")
    if subscriber.status == SubscriberStatus.PENDING and subscriber.token_nonce != claim.nonce:
        raise LinkUsed("superseded")
    return subscriber


def confirm(token: str, origin: Origin) -> ConfirmOutcome:
    """Activate the subscriber a confirmation link names. Safe under double clicks."""
    claim = read_confirm_token(token)
    changed = _change_status(
        claim.subscriber_id, SubscriberStatus.ACTIVE,
        (Subscriber.status == SubscriberStatus.PENDING, Subscriber.token_nonce == claim.nonce),
        confirmed_at=utcnow(), unsubscribed_at=None)
    if not changed:
        db.session.rollback()
        subscriber = db.session.get(Subscriber, claim.subscriber_id)
        if subscriber is None:
            raise TokenInvalid("unknown subscriber")
        if subscriber.status == SubscriberStatus.ACTIVE:
            return ConfirmOutcome.ALREADY_ACTIVE
        raise LinkUsed("used or superseded")
    subscriber = db.session.get(Subscriber, claim.subscriber_id, populate_existing=True)
    _log(subscriber, ConsentAction.CONFIRMED, origin)
    outbox.owe(subscriber.id, MailTemplate.WELCOME)
    db.session.commit()
    return ConfirmOutcome.CONFIRMED


def subscriber_for_unsubscribe_token(token: str) -> Subscriber:
    """The reader an unsubscribe link names: by its random key, or (mails sent before
    the keys existed) by the old signed id. Erased readers' links are invalid."""
    if is_unsubscribe_key(token):
        subscriber = db.session.scalar(
            select(Subscriber).where(Subscriber.unsubscribe_key == token))
    else:
        subscriber = db.session.get(Subscriber, read_legacy_unsubscribe_token(token))
    if subscriber is None or _erased(subscriber):
        raise TokenInvalid("unknown subscriber")
    return subscriber


def unsubscribe(token: str, origin: Origin) -> Subscriber:
    """Unsubscribe at once; repeating it is harmless and logs nothing new."""
    subscriber_id = subscriber_for_unsubscribe_token(token).id
    changed = _change_status(subscriber_id, SubscriberStatus.UNSUBSCRIBED,
                             (Subscriber.status != SubscriberStatus.UNSUBSCRIBED,),
                             unsubscribed_at=utcnow())
    subscriber = db.session.get(Subscriber, subscriber_id, populate_existing=True)
    if changed:
        _log(subscriber, ConsentAction.UNSUBSCRIBED, origin)
    db.session.commit()
    return subscriber


def resubscribe(token: str, origin: Origin) -> None:
    """From the unsubscribe page: subscribe again, which needs confirmation again."""
    subscriber = subscriber_for_unsubscribe_token(token)
    subscribe(subscriber.email, subscriber.name, origin)
