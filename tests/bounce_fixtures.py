"""Realistic bounce and complaint mails (tests/fixtures/bounces), filled in per test."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bounces"
HARD_FORMATS = ("postfix_hard", "exim_hard", "exim_text_only_hard", "exchange_hard",
                "gmail_hard", "yahoo_hard")
SOFT_FORMATS = ("postfix_soft_delayed", "gmail_soft_full")


def bounce_mail(name: str, *, verp: str, recipient: str,
                message_id: str = "<digest-1.1@example.com>") -> bytes:
    local, _, domain = recipient.partition("@")
    text = (FIXTURES / f"{name}.eml").read_text()
    for placeholder, value in (("%%VERP%%", verp), ("%%RCPT%%", recipient),
                               ("%%RCPTDOMAIN%%", domain), ("%%RCPTLOCAL%%", local),
                               ("%%MSGID%%", message_id)):
        text = text.replace(placeholder, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
