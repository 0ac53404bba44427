"""Mails to editors (invitation, failed-login alert, a webhook endpoint disabled)
through the transactional queue.

Like a reader's confirmation: a row in the same transaction as the action that owes
it, a task published after commit, a lease so a duplicate task does not send twice,
and the beat's sweep for rows whose task was lost.
"""

from __future__ import annotations

import logging

from flask import current_app

from newsletter import jobs
from newsletter.content import site_settings
from newsletter.delivery import outbox
from newsletter.editors import invites
from newsletter.extensions import db
from newsletter.mail.language import SOURCE_LANGUAGE
from newsletter.mail.links import external_url
from newsletter.mail.message import build_message
from newsletter.mail.render import RenderedMail, render_mail
from newsletter.mail.transport import Outcome
from newsletter.models import Editor, EditorMail, EditorMailKind, utcnow
from newsletter.queue import enqueue_after_commit, send_task_now

log = logging.getLogger(__name__)


def owe(editor_id: int, kind: EditorMailKind) -> None:
    mail = EditorMail(editor_id=editor_id, kind=kind)
    db.session.add(mail)
    db.session.flush()
    enqueue_after_commit(jobs.SEND_EDITOR_MAIL, mail.id)


def send(mail_id: int) -> None:
    """Send one owed editor mail, if this copy of the task wins the lease. The lease is
    committed first (``outbox.claim``); the outcome is left to the caller's
    transaction."""
    if not outbox.claim(EditorMail, mail_id):
        return
    mail = db.session.get(EditorMail, mail_id)
    editor = db.session.get(Editor, mail.editor_id)
    rendered = render(mail.kind, editor)
    message = build_message(rendered, mail_from=site_settings.mail_from(), to_email=editor.email)
    result = current_app.extensions["smtp"].deliver_message(message)
    if result.outcome in (Outcome.SENT, Outcome.UNKNOWN):
        mail.sent_at = utcnow()
    else:
        mail.claimed_at = None
        if result.outcome in (Outcome.FAILED, Outcome.BOUNCED):
            mail.attempts = outbox.MAX_ATTEMPTS
        log.warning("editor mail %s (editor %s) not sent: %s", mail_id, editor.id,
                    result.outcome.value)


def render(kind: EditorMailKind, editor: Editor) -> RenderedMail:
    """One of these mails for an editor."""
    site = site_settings.current()
    context = {"site_name": site.site_name, "postal_address": site.postal_address,
               "editor": editor, "account_url": external_url("admin.account")}
    if kind == EditorMailKind.INVITE:
        context["invite_url"] = external_url("admin.accept_invite",
                                             token=invites.make_invite_token(editor))
    elif kind == EditorMailKind.WEBHOOK_DISABLED:
        context["webhooks_url"] = external_url("admin.webhooks_page")
        context["window_hours"] = f"{current_app.config['WEBHOOK_RETRY_WINDOW'] / 3600:g}"
    # Editors' mails stay English, the catalogues' own language.
    return render_mail(f"editor_{kind.value}", language=SOURCE_LANGUAGE, **context)


def enqueue_owed() -> int:
    return sum(send_task_now(jobs.SEND_EDITOR_MAIL, mail_id)
               for mail_id in outbox.owed_ids(EditorMail))
