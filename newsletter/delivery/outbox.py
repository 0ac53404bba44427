"""Transactional mails to one subscriber (confirmation, welcome, re-engagement), sent at
least once.

A mail is a row first. The task that sends it claims the row with a lease, so two
copies of the task (a retry, a sweep) do not both send it; the sweeper picks up
rows whose task was never published (Redis down) or whose worker died.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import insert, or_, select, update

from newsletter import jobs
from newsletter.content import site_settings
from newsletter.extensions import db
from newsletter.mail import verp
from newsletter.mail.links import external_url
from newsletter.mail.message import build_message
from newsletter.mail.render import RenderedMail, render_mail
from newsletter.mail.tokens import make_address_token, make_confirm_token, make_keep_token
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.models import (
    ADDRESS_UNDO_DAYS,
    AddressChange,
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.queue import enqueue_after_commit, send_task_now

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)
SWEEP_GRACE = timedelta(minutes=1)  # leave fresh rows to the task enqueued with them
MAX_ATTEMPTS = 5


def owe(subscriber_id: int, template: MailTemplate, *, publish: bool = True) -> int:
    """Add an owed mail to the current transaction; its task is sent after commit
    (unless the caller sends it itself with ``send`` after committing)."""
    mail = OutboxMail(subscriber_id=subscriber_id, template=template)
    db.session.add(mail)
    db.session.flush()
    if publish:
        enqueue_after_commit(jobs.SEND_OUTBOX_MAIL, mail.id)
    return mail.id


def owe_later(subscriber_ids: list[int], template: MailTemplate) -> None:
    """Owed mails for many readers at once, in the current transaction, published by
    beat's owed-mail sweep (``enqueue_owed``, 1000 a minute) rather than at once, so a
    reader's confirmation never waits behind them."""
    if subscriber_ids:
        db.session.execute(insert(OutboxMail), [
            {"subscriber_id": subscriber_id, "template": template, "requested_at": utcnow()}
            for subscriber_id in subscriber_ids])


def claim(model, mail_id: int) -> bool:
    """Lease one owed mail row (an ``OutboxMail`` or an editor's ``EditorMail``: the
    same columns), so two copies of its task never both send it.

    Commits (a deliberate early commit): the mail must be visibly taken before this
    worker talks to the relay, or a retried copy of the task would send it too.
    """
    now = utcnow()
    claimed = db.session.execute(
        update(model)
        .where(model.id == mail_id, model.sent_at.is_(None), model.attempts < MAX_ATTEMPTS,
               or_(model.claimed_at.is_(None), model.claimed_at < now - CLAIM_LEASE))
        .values(claimed_at=now, attempts=model.attempts + 1)
    ).rowcount
    db.session.commit()
    return claimed == 1


def send(mail_id: int) -> None:
    """Send one owed mail if it is still owed and still wanted. The claim commits at
    once; the result is written into the caller's transaction."""
    if not claim(OutboxMail, mail_id):
        return
    mail = db.session.get(OutboxMail, mail_id)
    subscriber = db.session.get(Subscriber, mail.subscriber_id)
    change = None
    if mail.template == MailTemplate.ADDRESS_CHANGED:
        # The old address hears of the change whatever the reader did since; erasure
        # deletes the change, and with it this mail.
        change = db.session.scalar(select(AddressChange).where(
            AddressChange.notice_mail_id == mail.id))
        unwanted = change is None
    else:
        wanted = {MailTemplate.CONFIRM: SubscriberStatus.PENDING,
                  MailTemplate.WELCOME: SubscriberStatus.ACTIVE,
                  MailTemplate.UNSUBSCRIBE_LINK: SubscriberStatus.ACTIVE,
                  MailTemplate.CHANGE_ADDRESS: SubscriberStatus.ACTIVE,
                  MailTemplate.REENGAGE: SubscriberStatus.ACTIVE}[mail.template]
        unwanted = subscriber.status != wanted or (mail.template == MailTemplate.CHANGE_ADDRESS
                                                   and subscriber.pending_email is None)
    if unwanted:
        # Confirmed through an earlier mail, or unsubscribed since: nothing to send.
        mail.sent_at, mail.last_error = utcnow(), f"skipped: subscriber is {subscriber.status}"
        return
    try:
        message = _message(mail.template, subscriber, change)
    except Exception as error:  # an address the mail cannot carry: this mail fails, not the worker
        result = DeliveryResult(Outcome.FAILED, f"message not built: {error}"[:500])
    else:
        result = current_app.extensions["smtp"].deliver_message(
            message, verp.address_for(verp.DeliveryRef(outbox_mail_id=mail.id)))
    if result.outcome in (Outcome.SENT, Outcome.UNKNOWN):  # unknown: maybe delivered; no resend
        mail.sent_at = utcnow()
        mail.last_error = None if result.outcome is Outcome.SENT else result.detail
    else:
        mail.last_error, mail.claimed_at = result.detail, None
        if result.outcome in (Outcome.FAILED, Outcome.BOUNCED):
            mail.attempts = MAX_ATTEMPTS  # permanent: the sweeper leaves it alone
        # The reply can quote the address: the log names the subscriber by id only, and
        # gives the reason only when it is about the relay (TLS, login, connection).
        reason = f" ({result.detail})" if result.outcome is Outcome.UNREACHABLE else ""
        log.warning("outbox mail %s to subscriber %s not sent: %s%s", mail_id,
                    subscriber.id, result.outcome.value, reason)


def _message(template: MailTemplate, subscriber: Subscriber,
             change: AddressChange | None = None):
    config = current_app.config
    # The header writer puts an IDN domain in ASCII. An address change is confirmed
    # by the new address, and the old one is told of it.
    to_email = {MailTemplate.CHANGE_ADDRESS: subscriber.pending_email,
                MailTemplate.ADDRESS_CHANGED: change and change.old_email}.get(
                    template, subscriber.email)
    # Confirmation mails carry no one-click header: the reader has not joined yet; the
    # old address's notice carries none either (the key is the new address's now).
    return build_message(
        render(template, subscriber, change),
        mail_from=site_settings.mail_from(),
        reply_to=site_settings.current().reply_to or None,
        to_email=to_email,
        # A confirmation or an unsubscribe link goes to whoever was named, on a
        # stranger's request: no name, no text chosen by the requester.
        to_name=subscriber.name if template == MailTemplate.WELCOME else None,
        unsubscribe_url=(None if template in (MailTemplate.CONFIRM, MailTemplate.CHANGE_ADDRESS,
                                              MailTemplate.ADDRESS_CHANGED)
                         else _unsubscribe_url(subscriber)),
        list_id=config["LIST_ID"],
    )


def _unsubscribe_url(subscriber: Subscriber) -> str:
    return external_url("public.unsubscribe", token=subscriber.unsubscribe_key)


def render(template: MailTemplate, subscriber: Subscriber,
           change: AddressChange | None = None) -> RenderedMail:
    """One of these mails for a subscriber (also the workspace's preview); the old
    address's notice needs the change it tells of."""
    config = current_app.config
    branding = site_settings.current()
    unsubscribe_url = _unsubscribe_url(subscriber)
    context = {
        "site_name": branding.site_name,
        "postal_address": branding.postal_address,
        "subscriber": subscriber,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": external_url("preferences.page", token=subscriber.unsubscribe_key),
        "confirm_days": max(1, config["CONFIRM_MAX_AGE"] // 86400),
    }
    if template == MailTemplate.WELCOME:
        context["mail_text"] = site_settings.fill(
            branding.welcome_text, site_name=branding.site_name, email=subscriber.email)
    if template == MailTemplate.CONFIRM:
        # The owner's text knows the site's name only: nothing the requester chose.
        context["mail_text"] = site_settings.fill(branding.confirm_text,
                                                  site_name=branding.site_name)
        context["confirm_url"] = external_url(
            "public.confirm", token=make_confirm_token(subscriber.id, subscriber.token_nonce))
    elif template == MailTemplate.CHANGE_ADDRESS:
        context["confirm_url"] = external_url("preferences.confirm_address", token=(
            make_address_token(subscriber.id, subscriber.token_nonce, subscriber.pending_email)))
    elif template == MailTemplate.REENGAGE:
        context["keep_url"] = external_url("preferences.keep", token=make_keep_token(subscriber.id))
        context["issues"] = config["SUNSET_AFTER_ISSUES"]
        context["grace_days"] = config["SUNSET_GRACE_DAYS"]
    elif template == MailTemplate.ADDRESS_CHANGED:
        context["undo_url"] = external_url("preferences.undo_address", key=change.undo_key)
        context["changed_at"] = change.changed_at
        context["undo_days"] = ADDRESS_UNDO_DAYS
    return render_mail(template.value, language=subscriber.language, **context)


def owed_ids(model, limit: int = 1000) -> list[int]:
    """Owed rows (an ``OutboxMail`` or an ``EditorMail``) whose first task was lost:
    unsent, not given up on, past the grace period, and not claimed right now."""
    now = utcnow()
    return list(db.session.scalars(
        select(model.id)
        .where(model.sent_at.is_(None), model.attempts < MAX_ATTEMPTS,
               model.requested_at < now - SWEEP_GRACE,
               or_(model.claimed_at.is_(None), model.claimed_at < now - CLAIM_LEASE))
        .order_by(model.id)
        .limit(limit)))


def enqueue_owed() -> int:
    """Re-publish tasks for owed mails whose first task was lost; returns how many."""
    return sum(send_task_now(jobs.SEND_OUTBOX_MAIL, mail_id) for mail_id in owed_ids(OutboxMail))
