"""The deliverability guard: a send that bounces or draws complaints pauses itself.

While an issue sends, its hard-bounce and complaint rates over the messages
sent so far are checked after every batch and every bounce report. Once at
least GUARD_MIN_SAMPLE messages are out, a rate above its threshold
(GUARD_MAX_HARD_BOUNCE_PERCENT, GUARD_MAX_COMPLAINT_PERCENT) pauses the send
(``digests.pause``, with the figures as the pause reason), and the owners get
an alert mail. Resuming needs an owner's explicit confirmation; from then on
the guard judges only the messages sent after it.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from flask import current_app
from sqlalchemy import select

from newsletter import jobs
from newsletter.bounces import stats
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.mail import verp
from newsletter.mail.addresses import parse_mailbox
from newsletter.mail.links import external_url
from newsletter.mail.transport import Outcome
from newsletter.models import Digest, DigestStatus, utcnow
from newsletter.queue import enqueue_after_commit

log = logging.getLogger(__name__)
REASON_PREFIX = "deliverability guard: "


def check_issue(digest_id: int) -> bool:
    """Pause the issue if its rates are over the limits; True when this call paused it
    (the owners' alert is published when the caller commits)."""
    digest = db.session.get(Digest, digest_id, populate_existing=True)
    if digest is None or digest.status != DigestStatus.SENDING:
        return False
    config = current_app.config
    if not stats.has_bad_events(digest_id):
        return False  # the common case, checked after every batch: one small query
    rates = stats.issue_rates(digest_id, since=digest.guard_acknowledged_at)
    if rates["sent"] < config["GUARD_MIN_SAMPLE"]:
        return False
    over = []
    if rates["hard_percent"] > config["GUARD_MAX_HARD_BOUNCE_PERCENT"]:
        over.append(f"hard bounces {rates['hard_percent']:.2f} % ({rates['hard']} of "
                    f"{rates['sent']} sent; limit {config['GUARD_MAX_HARD_BOUNCE_PERCENT']:g} %)")
    if rates["complaint_percent"] > config["GUARD_MAX_COMPLAINT_PERCENT"]:
        over.append(f"complaints {rates['complaint_percent']:.2f} % ({rates['complaints']} of "
                    f"{rates['sent']} sent; limit {config['GUARD_MAX_COMPLAINT_PERCENT']:g} %)")
    reason = REASON_PREFIX + "; ".join(over)
    if not over or not digests.pause(digest_id, reason):
        return False
    enqueue_after_commit(jobs.SEND_DELIVERABILITY_ALERT, digest_id)
    log.warning("issue %s paused: %s", digest_id, reason)
    return True


def paused_by_guard(digest: Digest) -> bool:
    return (digest.status == DigestStatus.PAUSED
            and (digest.pause_reason or "").startswith(REASON_PREFIX))


def guard_paused_issues() -> list[Digest]:
    return [digest for digest in db.session.scalars(
        select(Digest).where(Digest.status == DigestStatus.PAUSED).order_by(Digest.id))
        if paused_by_guard(digest)]


def resume_confirmed(digest_id: int, confirmed: bool) -> bool:
    """Resume a guard-paused issue; refused without the owner's explicit confirmation."""
    digest = db.session.get(Digest, digest_id)
    if digest is None or not confirmed:
        return False
    return digests.resume(digest_id, acknowledge_guard=paused_by_guard(digest))


def send_alert(digest_id: int) -> int:
    """Mail every owner the figures of a paused issue; returns how many were sent."""
    digest = db.session.get(Digest, digest_id)
    if digest is None or not paused_by_guard(digest):
        return 0
    config = current_app.config
    sender = parse_mailbox(config["MAIL_FROM"])
    rates = stats.issue_rates(digest_id)
    report_url = external_url("admin.digest_report", digest_id=digest_id)
    domains = "\n".join(
        f"  {row['domain']}: {row['sent']} sent, {row['hard']} hard, {row['soft']} soft, "
        f"{row['complaint']} complaints" for row in stats.issue_domains(digest_id, 10))
    body = (f"The send of issue {digest.id} ({digest.subject}) paused itself.\n\n"
            f"{digest.pause_reason}\n\n"
            f"So far: {rates['sent']} sent, {rates['hard']} hard bounces, {rates['soft']} soft "
            f"bounces, {rates['complaints']} complaints.\n\nBy recipient domain:\n{domains}\n\n"
            "Nothing more goes out until an owner resumes it, with confirmation, at\n"
            f"{report_url}\n\nA list with many dead addresses (an old import?) or content "
            "readers did not ask for burns the sending domain's reputation: check before "
            "resuming.\n")
    sent = 0
    for owner in accounts.owners():
        message = EmailMessage()
        message["From"] = sender
        message["To"] = owner.email
        message["Subject"] = f"Send paused: issue {digest.id} is bouncing or drawing complaints"
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_msgid(domain=sender.domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)
        result = current_app.extensions["smtp"].deliver_message(
            message, verp.plain_bounce_address())
        if result.outcome is Outcome.SENT:
            sent += 1
        else:
            log.warning("deliverability alert to %s not sent: %s", owner.email, result.detail)
    return sent
