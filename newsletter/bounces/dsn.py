"""Read what the mail world sends back: delivery status notifications and ARF complaints.

DSNs (RFC 3464, and the non-standard formats of Exim, Exchange, Yahoo, qmail,
Postfix, ...) go through ``flufl.bounce``, Mailman 3's detector; the status
code per recipient is read from the ``message/delivery-status`` part or, for
non-standard formats, from the text next to the address. Complaints (ARF,
RFC 5965) are read with the email package. Nothing here touches the database:
it says what a report claims and which VERP tokens it carries; the service
decides whether to believe it.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from newsletter.models import BounceKind

# Enhanced status codes (RFC 3463): class.subject.detail.
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Headers that carry the address a report was delivered to: for a DSN this is our
# VERP envelope sender; mailbox servers record it in one of these.
_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to",
                     "x-failed-recipients-to")
COMPLAINT_FEEDBACK_TYPES = {"abuse", "fraud"}
_PROVIDERS = {  # feedback-loop operators, by the domain their reports come from
    "yahoo": "Yahoo", "aol": "AOL", "outlook": "Microsoft", "hotmail": "Microsoft",
    "live": "Microsoft", "microsoft": "Microsoft", "comcast": "Comcast", "gmail": "Gmail",
    "google": "Gmail", "mail.ru": "Mail.ru", "fastmail": "Fastmail", "zoho": "Zoho",
}


@dataclass(frozen=True)
class Failure:
    address: str
    kind: BounceKind  # HARD or SOFT
    status_code: str | None
    reason: str


@dataclass
class Report:
    """What a report says. ``kind`` UNPARSED means not understood, with ``problem``."""

    kind: BounceKind
    failures: list[Failure] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # VERP tokens found, unverified
    provider: str | None = None
    reason: str = ""
    problem: str = ""
    fingerprint: str = ""  # the same report delivered twice has the same one


def _classify(status: str | None, permanent: bool) -> BounceKind:
    """5.1.x (and permanent failures without a code) are hard; 4.x.x, mailbox full
    (5.2.2) and policy refusals (5.7.x: spam filters, blocks) say nothing final
    about the address, so they are soft."""
    if status is None:
        return BounceKind.HARD if permanent else BounceKind.SOFT
    klass, subject, detail = status.split(".")
    if klass == "4" or (subject, detail) == ("2", "2") or subject == "7":
        return BounceKind.SOFT
    return BounceKind.HARD


def _text_of(message: Message, limit: int = 200_000) -> str:
    """The human-readable parts, for status codes in non-standard bounces."""
    chunks: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() == "text" and part.get_content_subtype() != "html":
            payload = part.get_payload(decode=True) or b""
            chunks.append(payload.decode(part.get_content_charset() or "latin-1",
                                         errors="replace"))
        if sum(map(len, chunks)) > limit:
            break
    if not message.is_multipart() and not chunks:
        payload = message.get_payload()
        chunks.append(payload if isinstance(payload, str) else "")
    return "\n".join(chunks)[:limit]


def _dsn_fields(message: Message) -> dict[str, tuple[str | None, str]]:
    """recipient -> (Status, Diagnostic-Code) from the RFC 3464 machine-readable part."""
    fields: dict[str, tuple[str | None, str]] = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():
            recipient = block.get("final-recipient") or block.get("original-recipient")
            if not recipient:
                continue
            address = parseaddr(recipient.split(";", 1)[-1].strip())[1].lower()
            match = _STATUS.search(str(block.get("status", "")))
            diagnostic = " ".join(str(block.get("diagnostic-code", "")).split())[:500]
            status = match.group(0) if match else None
            specific = _STATUS.search(diagnostic)
            if specific and (status is None or status.endswith(".0.0")):
                status = specific.group(0)  # Exim says 5.0.0 and puts 5.1.1 in the text
            fields[address] = (status, diagnostic)
    return fields


def _status_near(text: str, address: str) -> tuple[str | None, str]:
    """For non-standard bounces: the first status code after the address, and that line."""
    lowered = text.lower()
    start = lowered.find(address)
    window = text[start:start + 600] if start >= 0 else text[:2000]
    match = _STATUS.search(window)
    if match is None:
        return None, " ".join(window.split())[:300]
    line_start = window.rfind("\n", 0, match.start()) + 1
    line_end = window.find("\n", match.end())
    return match.group(0), " ".join(window[line_start:line_end if line_end > 0 else None]
                                    .split())[:300]


def _tokens_in(addresses: list[str], is_ours) -> list[str]:
    tokens = []
    for address in addresses:
        token = is_ours(address)
        if token and token not in tokens:
            tokens.append(token)
    return tokens


def _header_addresses(message: Message, names) -> list[str]:
    values = []
    for name in names:
        values += [str(value) for value in message.get_all(name, [])]
    return [address for _, address in getaddresses(values) if address]


def _provider(message: Message, fallback: str | None) -> str | None:
    domain = parseaddr(str(message.get("from", "")))[1].rpartition("@")[2].lower()
    for key, name in _PROVIDERS.items():
        if key in domain:
            return name
    return domain or fallback


def _feedback_fields(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload[0]
    if isinstance(payload, str):
        return email.message_from_string(payload)
    return None


def _original_headers(report: Message) -> Message | None:
    for part in report.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if part.get_content_type() == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            original = email.message_from_bytes(text)
            if len(original.keys()):
                return original
    return None


def fingerprint_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:40]


def parse(raw: bytes, envelope_to: list[str], token_of) -> Report:
    """Read one report. ``token_of(address)`` returns the VERP token in one of our
    addresses (or None); ``envelope_to`` are the SMTP recipients when known."""
    fingerprint = fingerprint_of(raw)
    try:
        message = email.message_from_bytes(raw)
    except Exception as error:  # the parser is lenient; this is for the truly broken
        return Report(BounceKind.UNPARSED, problem=f"malformed MIME: {error}",
                      fingerprint=fingerprint)
    if not message.keys():
        return Report(BounceKind.UNPARSED, problem="malformed: no headers",
                      fingerprint=fingerprint)
    tokens = _tokens_in(list(envelope_to) + _header_addresses(message, _ENVELOPE_HEADERS),
                        token_of)
    if (message.get_content_type() == "multipart/report"
            and message.get_param("report-type", "").lower() == "feedback-report"):
        return _complaint(message, tokens, token_of, fingerprint)
    try:
        temporary, permanent = all_failures(message)
    except Exception as error:  # a detector choking on odd input is "not understood"
        return Report(BounceKind.UNPARSED, tokens=tokens, fingerprint=fingerprint,
                      problem=f"bounce detector failed: {type(error).__name__}")
    if not temporary and not permanent:
        subject = " ".join(str(message.get("subject", "")).split())[:120]
        return Report(BounceKind.UNPARSED, tokens=tokens, fingerprint=fingerprint,
                      problem=f"not a bounce we understand (subject: {subject!r})")
    dsn = _dsn_fields(message)
    text = None
    failures = []
    for raw_address, is_permanent in ([(a, False) for a in sorted(temporary - permanent)]
                                      + [(a, True) for a in sorted(permanent)]):
        address = raw_address.decode(errors="replace").lower()
        if address in dsn and dsn[address][0]:
            status, reason = dsn[address]
        else:
            text = _text_of(message) if text is None else text
            status, reason = _status_near(text, address)
        failures.append(Failure(address, _classify(status, is_permanent), status,
                                reason or ("permanent failure" if is_permanent else "delayed")))
    kind = (BounceKind.HARD if any(f.kind is BounceKind.HARD for f in failures)
            else BounceKind.SOFT)
    return Report(kind, failures=failures, tokens=tokens, fingerprint=fingerprint,
                  provider=_provider(message, None),
                  reason="; ".join(f"{f.address}: {f.reason}" for f in failures)[:1000])


def _complaint(message: Message, tokens: list[str], token_of, fingerprint: str) -> Report:
    fields = None
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _feedback_fields(part)
            break
    if fields is None:
        return Report(BounceKind.UNPARSED, tokens=tokens, fingerprint=fingerprint,
                      problem="ARF report without a message/feedback-report part")
    feedback_type = str(fields.get("feedback-type", "")).strip().lower()
    provider = _provider(message, str(fields.get("user-agent", "")).split("/")[0] or None)
    original = _original_headers(message)
    if original is None:
        return Report(BounceKind.UNPARSED, tokens=tokens, fingerprint=fingerprint,
                      provider=provider,
                      problem="ARF report without the original message: cannot tell "
                              "which mail it is about")
    # The receiving system adds Return-Path (our VERP address) to the original.
    tokens = tokens + [t for t in _tokens_in(
        _header_addresses(original, ("return-path",)), token_of) if t not in tokens]
    if feedback_type not in COMPLAINT_FEEDBACK_TYPES:
        return Report(BounceKind.UNPARSED, tokens=tokens, fingerprint=fingerprint,
                      provider=provider,
                      problem=f"feedback type {feedback_type or 'missing'!r} is not a complaint")
    recipient = parseaddr(str(fields.get("original-rcpt-to", "")))[1].lower()
    return Report(BounceKind.COMPLAINT, tokens=tokens, fingerprint=fingerprint,
                  provider=provider,
                  failures=[Failure(recipient, BounceKind.COMPLAINT, None, "")] if recipient
                  else [],
                  reason=f"complaint via {provider or 'an unnamed'} feedback loop "
                         f"(feedback-type: {feedback_type})")
