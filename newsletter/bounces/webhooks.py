"""Bounces and complaints reported by sending providers' webhooks.

Each provider proves the request is its own in its own way; a request that
does not prove it is refused (403) before anything is read from it:

- Amazon SES, through SNS: an RSA signature over the canonical message, made
  with the certificate at SigningCertURL, which must be https on exactly an SNS
  host (``sns.<region>.amazonaws.com`` or ``….amazonaws.com.cn``, no port, no
  user info) and be issued to SNS (subject sns.amazonaws.com, or that host);
  the topic must be one of WEBHOOK_SNS_TOPIC_ARNS. SubscriptionConfirmation is
  confirmed only under the same checks.
- Postmark: HTTP Basic auth (WEBHOOK_POSTMARK_AUTH, "user:password").
- Mailgun: HMAC-SHA256 of timestamp+token with the signing key; the timestamp
  must be fresh (WEBHOOK_MAX_AGE). The signature does not cover the body, so
  every signed request's token is marked used before anything in it is read:
  a token is accepted once, whatever its first request was.
- SendGrid: the signed event webhook, ECDSA P-256 over timestamp+body with
  the verification key from SendGrid's settings; fresh timestamps only.

An event names the reader by address, but acts only if it also names a message
we sent to that address (our VERP envelope sender or our Message-ID, as the
provider passes them back): a provider account shared with other senders, or
an address we never mailed that message to, changes nothing; such an event is
parked as ignored.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import load_der_public_key
from flask import current_app
from sqlalchemy import select

from newsletter.bounces import intake, limits
from newsletter.extensions import db
from newsletter.mail import verp
from newsletter.mail.addresses import InvalidAddress, check_email
from newsletter.models import BounceEvent, BounceKind, BounceSource, Subscriber

PROVIDERS = ("ses", "postmark", "mailgun", "sendgrid")
# A VERP address inside a bounce's text (Postmark passes the bounce itself, not our headers).
_VERP_ADDRESS = re.compile(r"\bbounces\+[a-z0-9.]{1,60}@[a-z0-9.-]{1,253}", re.IGNORECASE)
_sns_certificates: dict[str, x509.Certificate] = {}  # per process: AWS rotates them rarely


class Refused(Exception):
    """Not provably from the provider (403), or the provider is not set up here (404)."""

    def __init__(self, reason: str, status: int = 403):
        super().__init__(reason)
        self.status = status


class BadPayload(ValueError):
    """Signed, but not a payload we can read (400)."""


class Unavailable(Exception):
    """We cannot check the request now (503): the provider retries later."""


@dataclass(frozen=True)
class Report:
    kind: BounceKind
    email: str
    reason: str
    dedup_key: str | None
    status_code: str | None = None
    envelope_from: str | None = None
    message_id: str | None = None
    provider: str = ""


def handle(provider: str, headers, body: bytes) -> list[str]:
    """Verify one webhook request and record what it reports; one line per event."""
    if provider not in PROVIDERS:
        raise Refused("unknown provider", 404)
    reports = {"ses": _ses, "postmark": _postmark, "mailgun": _mailgun,
               "sendgrid": _sendgrid}[provider](headers, body)
    return [_apply(report) for report in reports]


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("not JSON") from None


def _fresh(timestamp: str) -> None:
    try:
        age = abs(time.time() - int(timestamp))
    except (TypeError, ValueError):
        raise Refused("bad timestamp") from None
    if age > current_app.config["WEBHOOK_MAX_AGE"]:
        raise Refused("stale timestamp (replayed?)")


# --- Amazon SES via SNS -----------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}


# AWS's SNS endpoints: sns.us-east-1.amazonaws.com, sns.us-gov-west-1.amazonaws.com,
# sns.cn-north-1.amazonaws.com.cn. Nothing else on amazonaws.com (S3 buckets are there).
_SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d{1,2}\.amazonaws\.com(?:\.cn)?")
# Whom AWS issues its SNS signing certificates to.
SNS_CERT_SUBJECT = "sns.amazonaws.com"


def _sns_host_ok(url: str) -> bool:
    """https://SNS-HOST/... exactly: no user info, no port, no other host in disguise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    netloc = parts.netloc
    return (parts.scheme == "https" and port is None and netloc.isascii()
            and _SNS_HOST.fullmatch(netloc) is not None and parts.hostname == netloc)


def _sns_subject_ok(certificate: x509.Certificate, url: str) -> bool:
    """The certificate is issued to SNS: its common name (or a DNS name in it) is
    sns.amazonaws.com or the SNS host it was fetched from."""
    expected = {SNS_CERT_SUBJECT, urlsplit(url).hostname}
    names = [attribute.value for attribute in
             certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    with contextlib.suppress(x509.ExtensionNotFound):
        names += certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    return any(str(name).lower() in expected for name in names)


def _sns_certificate(url: str) -> x509.Certificate:
    if url not in _sns_certificates:
        if not urlsplit(url).path.endswith(".pem"):
            raise ValueError("not a certificate URL")
        if len(_sns_certificates) >= 20:  # AWS uses a handful; never let callers grow it
            _sns_certificates.clear()
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (https, host checked)
            _sns_certificates[url] = x509.load_pem_x509_certificate(response.read(65536))
    return _sns_certificates[url]


def _verify_sns(message: dict) -> None:
    kind = message.get("Type")
    if kind not in _SNS_FIELDS:
        raise Refused("not an SNS message")
    topics = current_app.config["WEBHOOK_SNS_TOPIC_ARNS"]
    if message.get("TopicArn") not in topics:
        raise Refused("topic not allowed")
    cert_url = str(message.get("SigningCertURL", ""))
    if not _sns_host_ok(cert_url):
        raise Refused("signing certificate not on an allowed SNS host")
    version = str(message.get("SignatureVersion"))
    if version not in ("1", "2"):
        raise Refused("unknown SNS signature version")
    canonical = "".join(f"{name}\n{message[name]}\n" for name in _SNS_FIELDS[kind]
                        if isinstance(message.get(name), str))
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        certificate = _sns_certificate(cert_url)
        if not _sns_subject_ok(certificate, cert_url):
            raise Refused("signing certificate not issued to Amazon SNS")
        certificate.public_key().verify(
            signature, canonical.encode(), padding.PKCS1v15(),
            hashes.SHA1() if version == "1" else hashes.SHA256())  # noqa: S303 (SNS v1)
    except (InvalidSignature, binascii.Error, ValueError, TypeError, OSError):
        raise Refused("bad SNS signature") from None


def _confirm_subscription(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (host checked)
        response.read(65536)


def _ses(headers, body: bytes) -> list[Report]:
    if not current_app.config["WEBHOOK_SNS_TOPIC_ARNS"]:
        raise Refused("Amazon SES webhook not configured", 404)
    message = _json(body)
    if not isinstance(message, dict):
        raise Refused("not an SNS message")
    _verify_sns(message)
    if message["Type"] == "SubscriptionConfirmation":
        if not _sns_host_ok(str(message.get("SubscribeURL", ""))):
            raise Refused("SubscribeURL not on an allowed SNS host")
        _confirm_subscription(message["SubscribeURL"])
        return []
    if message["Type"] != "Notification":
        return []
    notification = _json(str(message.get("Message", "")).encode())
    if not isinstance(notification, dict):
        raise BadPayload("SES notification is not an object")
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail") or {}
    common = (mail.get("commonHeaders") or {}) if isinstance(mail, dict) else {}
    envelope_from, message_id = mail.get("source"), common.get("messageId")
    reports = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        for recipient in bounce.get("bouncedRecipients") or []:
            reports.append(Report(
                BounceKind.HARD if hard else BounceKind.SOFT, str(recipient.get("emailAddress")),
                str(recipient.get("diagnosticCode") or bounce.get("bounceSubType") or "")[:500],
                f"ses:{message['MessageId']}:{recipient.get('emailAddress')}",
                status_code=recipient.get("status"), envelope_from=envelope_from,
                message_id=message_id, provider="Amazon SES"))
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        feedback = complaint.get("complaintFeedbackType") or "abuse"
        if feedback != "not-spam":
            for recipient in complaint.get("complainedRecipients") or []:
                reports.append(Report(
                    BounceKind.COMPLAINT, str(recipient.get("emailAddress")),
                    f"complaint via Amazon SES feedback loop ({feedback})",
                    f"ses:{message['MessageId']}:{recipient.get('emailAddress')}",
                    envelope_from=envelope_from, message_id=message_id,
                    provider="Amazon SES"))
    return reports


# --- Postmark ---------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unknown"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked", "SMTPApiError"}


def _postmark(headers, body: bytes) -> list[Report]:
    expected = current_app.config["WEBHOOK_POSTMARK_AUTH"]
    if not expected:
        raise Refused("Postmark webhook not configured", 404)
    given = str(headers.get("Authorization", ""))
    scheme, _, credentials = given.partition(" ")
    try:
        decoded = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(decoded, expected.encode()):
        raise Refused("bad Postmark credentials")
    event = _json(body)
    if not isinstance(event, dict):
        raise BadPayload("not an object")
    record, kind = event.get("RecordType"), event.get("Type")
    email = str(event.get("Email") or "")
    # Postmark's MessageID is its own; ours shows only in the bounce itself ("Include
    # bounce content" in the webhook's settings) or in metadata the mail carried.
    content = f"{str(event.get('Content') or '')[:200_000]} {event.get('Metadata') or ''}"
    verp_address = _VERP_ADDRESS.search(content)
    our_id = verp.message_id_in(content)
    common = dict(dedup_key=f"postmark:{event['ID']}:{record}"[:128] if event.get("ID") else None,
                  provider="Postmark",
                  envelope_from=verp_address.group(0) if verp_address else None,
                  message_id=our_id or _angle(event.get("MessageID")))
    if record == "SpamComplaint" or kind == "SpamComplaint":
        return [Report(BounceKind.COMPLAINT, email, "complaint via Postmark feedback loop",
                       **common)]
    if record == "Bounce" and kind in _POSTMARK_HARD | _POSTMARK_SOFT:
        return [Report(BounceKind.HARD if kind in _POSTMARK_HARD else BounceKind.SOFT, email,
                       f"{kind}: {event.get('Description') or ''} {event.get('Details') or ''}"
                       .strip()[:500], **common)]
    return []


def _angle(message_id) -> str | None:
    return f"<{str(message_id).strip('<>')}>" if message_id else None


# --- Mailgun ----------------------------------------------------------------------

def _mailgun(headers, body: bytes) -> list[Report]:
    key = current_app.config["WEBHOOK_MAILGUN_SIGNING_KEY"]
    if not key:
        raise Refused("Mailgun webhook not configured", 404)
    payload = _json(body)
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise Refused("no Mailgun signature")
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("signature", ""))):
        raise Refused("bad Mailgun signature")
    _fresh(timestamp)
    dedup = f"mailgun:{token}"[:128]
    try:
        first = limits.first_use("mailgun", token, 2 * current_app.config["WEBHOOK_MAX_AGE"])
    except limits.Unavailable:
        raise Unavailable("cannot tell whether this Mailgun token was used before") from None
    if not first or db.session.scalar(select(BounceEvent.id).where(
            BounceEvent.dedup_key == dedup)):
        raise Refused("Mailgun token used before (replayed)")
    event = payload.get("event-data")
    if not isinstance(event, dict):
        raise BadPayload("no event-data")
    name, email = event.get("event"), str(event.get("recipient") or "")
    headers_ = ((event.get("message") or {}).get("headers") or {})
    common = dict(dedup_key=dedup, provider="Mailgun",
                  envelope_from=(event.get("envelope") or {}).get("sender"),
                  message_id=_angle(headers_.get("message-id")))
    if name == "complained":
        return [Report(BounceKind.COMPLAINT, email, "complaint via Mailgun feedback loop",
                       **common)]
    if name == "failed":
        status = event.get("delivery-status") or {}
        hard = event.get("severity") == "permanent"
        code = re.search(r"\b[245]\.\d{1,3}\.\d{1,3}\b", str(status.get("message") or "")
                         + " " + str(status.get("enhanced-code") or ""))
        return [Report(BounceKind.HARD if hard else BounceKind.SOFT, email,
                       str(status.get("description") or status.get("message")
                           or event.get("reason") or "")[:500],
                       status_code=code.group(0) if code else None, **common)]
    return []


# --- SendGrid ---------------------------------------------------------------------

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _sendgrid(headers, body: bytes) -> list[Report]:
    key = current_app.config["WEBHOOK_SENDGRID_PUBLIC_KEY"]
    if not key:
        raise Refused("SendGrid webhook not configured", 404)
    timestamp = str(headers.get(SENDGRID_TIMESTAMP, ""))
    try:
        public_key = load_der_public_key(base64.b64decode(key))
        signature = base64.b64decode(str(headers.get(SENDGRID_SIGNATURE, "")), validate=True)
        public_key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        raise Refused("bad SendGrid signature") from None
    _fresh(timestamp)
    events = _json(body)
    if not isinstance(events, list):
        raise BadPayload("not a list of events")
    reports = []
    for event in events[:1000]:
        if not isinstance(event, dict):
            continue
        name, email = event.get("event"), str(event.get("email") or "")
        event_id = event.get("sg_event_id")
        common = dict(dedup_key=f"sendgrid:{event_id}"[:128] if event_id else None,
                      provider="SendGrid", message_id=_angle(event.get("smtp-id")))
        if name == "spamreport":
            reports.append(Report(BounceKind.COMPLAINT, email,
                                  "complaint via SendGrid feedback loop", **common))
        elif name == "bounce":
            hard = event.get("type", "bounce") == "bounce"  # "blocked" says nothing final
            reports.append(Report(BounceKind.HARD if hard else BounceKind.SOFT, email,
                                  str(event.get("reason") or "")[:500],
                                  status_code=event.get("status"), **common))
    return reports


# --- recording --------------------------------------------------------------------

def _apply(report: Report) -> str:
    try:
        normalized = check_email(report.email).normalized
    except InvalidAddress:
        return intake.park_webhook(f"{report.provider}: unreadable address "
                                    f"{report.email[:100]!r}", report.provider,
                                    report.dedup_key).summary
    subscriber = db.session.scalar(select(Subscriber).where(
        Subscriber.email_normalized == normalized))
    if subscriber is None:
        return intake.park_webhook(f"{report.provider}: {report.kind.value} for an address "
                                    "we do not know", report.provider, report.dedup_key).summary
    ref = _delivery_ref(report, subscriber.id)
    if ref is None:
        return intake.park_webhook(
            f"{report.provider}: {report.kind.value} ignored: it names no message we sent "
            f"to subscriber {subscriber.id}", report.provider, report.dedup_key,
            action="ignored: names no message we sent to that address").summary
    event = intake.record(report.kind, BounceSource.WEBHOOK, subscriber.id,
                           ref=ref, recipient=subscriber.email,
                           provider=report.provider, status_code=report.status_code,
                           reason=report.reason, dedup_key=report.dedup_key)
    if event is None:
        return "duplicate: this event was recorded before"
    return f"{event.kind.value}: {event.action}"


def _delivery_ref(report: Report, subscriber_id: int) -> verp.DeliveryRef | None:
    """Which of our messages it was about (our VERP envelope sender, or our
    deterministic Message-ID, as the provider passes them back), only if we sent it to
    this subscriber; None when the report names none."""
    candidates = []
    token = verp.token_in_address(report.envelope_from or "")
    if token:
        with contextlib.suppress(verp.BadToken):
            candidates.append(verp.read_token(token))
    if ref := verp.ref_in_message_id(report.message_id):
        candidates.append(ref)
    for ref in candidates:
        subscriber = intake.subscriber_for(ref)
        if subscriber is not None and subscriber.id == subscriber_id:
            return ref
    return None
