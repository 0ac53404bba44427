"""Assemble single MIME messages (confirmation, welcome, test) with header-safe values."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from newsletter.mail.addresses import parse_mailbox
from newsletter.mail.headers import SafeHeader, language_tag
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
    reply_to: str | None = None,
) -> EmailMessage:
    # Every header is a SafeHeader: encoded and folded by newsletter.mail.headers,
    # written untouched by the email package (whose own folding has CVE-2024-6923).
    message = EmailMessage()
    sender = parse_mailbox(mail_from)
    message["From"] = SafeHeader.address("From", sender.addr_spec, sender.display_name)
    message["To"] = SafeHeader.address("To", to_email, to_name)
    if reply_to:
        message["Reply-To"] = SafeHeader.address("Reply-To", reply_to)
    message["Subject"] = SafeHeader.text("Subject", rendered.subject)
    message["Date"] = SafeHeader.text("Date", format_datetime(utcnow()))
    message["Message-ID"] = SafeHeader.text("Message-ID", make_msgid(domain=sender.domain))
    if list_id:
        message["List-Id"] = SafeHeader.text("List-Id", list_id)
    if unsubscribe_url:
        # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to this URL.
        message["List-Unsubscribe"] = SafeHeader.url_list("List-Unsubscribe", unsubscribe_url)
        message["List-Unsubscribe-Post"] = SafeHeader.text("List-Unsubscribe-Post",
                                                           "List-Unsubscribe=One-Click")
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # After the parts: setting content clears every Content-* header.
    message["Content-Language"] = SafeHeader.text("Content-Language",
                                                  language_tag(rendered.language))
    return message
