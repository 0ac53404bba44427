"""Assemble MIME messages with header-safe addresses."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from newsletter.mail.addresses import mailbox, parse_mailbox
from newsletter.mail.render import RenderedMail
from newsletter.models import utcnow


def build_message(
    rendered: RenderedMail,
    *,
    mail_from: str,
    to_email: str,
    to_name: str | None = None,
    unsubscribe_url: str | None = None,
    list_id: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    sender = parse_mailbox(mail_from)
    message["From"] = sender
    message["To"] = mailbox(to_email, to_name)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.domain)
    if list_id:
        message["List-Id"] = list_id
    if unsubscribe_url:
        # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to this URL.
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
