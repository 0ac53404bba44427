"""VERP: a per-(message, reader) envelope sender, so a bounce names its delivery.

Every message goes out with ``MAIL FROM:<bounces+TOKEN@BOUNCE_DOMAIN>``. The
token names the delivery (an issue and a subscriber, or an outbox mail) and
carries a short HMAC, so a bounce that arrives days later can be tied to one
reader, and a forged one (anyone can send us mail) is recognised and ignored.

The token survives mail systems that lower-case local parts (base36 ids,
base32 MAC, all lower case) and fits the 64-character local-part limit.

Tokens are signed with BOUNCE_KEY (or a key derived from SECRET_KEY) and checked
against every key still accepted: BOUNCE_KEY_FALLBACKS and the keys derived from
SECRET_KEY and each of SECRET_KEY_FALLBACKS, so a bounce of mail sent before a
rotation still names its reader. Every key is a string setting, so whatever key
signed a token can be given back as a fallback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from flask import current_app

from newsletter.mail.addresses import parse_mailbox
from newsletter.mail.tokens import MAX_ID, Sealer, open_ids

LOCAL_PART = "bounces"
MAC_BYTES = 10  # 80 bits: forging one token takes ~2**79 guesses, each a mail to us
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class BadToken(ValueError):
    """Not a token we issued: missing, malformed, or its signature does not match."""


@dataclass(frozen=True)
class DeliveryRef:
    """What a VERP token names: a digest delivery or a transactional (outbox) mail."""

    digest_id: int | None = None
    subscriber_id: int | None = None
    outbox_mail_id: int | None = None

    def describe(self) -> str:
        if self.outbox_mail_id is not None:
            return f"outbox mail {self.outbox_mail_id}"
        return f"issue {self.digest_id} to subscriber {self.subscriber_id}"


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("ids are not negative")
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if number == 0:
            return text


def _derived(secret_key: str) -> bytes:
    # A key of its own, derived so that it is never the session key itself.
    return hmac.new(secret_key.encode(), b"newsletter.verp", hashlib.sha256).digest()


def _key() -> bytes:
    """The key new tokens are signed with."""
    config = current_app.config
    if config["BOUNCE_KEY"]:
        return config["BOUNCE_KEY"].encode()
    return _derived(config["SECRET_KEY"])


def _accepted_keys() -> list[bytes]:
    """The signing key first, then every earlier one (mail sent before a rotation, or
    before BOUNCE_KEY was set, is still bouncing back for days)."""
    config = current_app.config
    keys = [_key(), *(key.encode() for key in config["BOUNCE_KEY_FALLBACKS"])]
    keys += [_derived(key) for key in (config["SECRET_KEY"], *config["SECRET_KEY_FALLBACKS"])]
    return list(dict.fromkeys(keys))


def _mac(body: str, key: bytes) -> str:
    digest = hmac.digest(key, body.encode(), "sha256")[:MAC_BYTES]
    return base64.b32encode(digest).decode().lower().rstrip("=")


def bounce_domain() -> str:
    config = current_app.config
    return config["BOUNCE_DOMAIN"] or parse_mailbox(config["MAIL_FROM"]).domain.lower()


def make_token(ref: DeliveryRef, key: bytes | None = None) -> str:
    if ref.outbox_mail_id is not None:
        body = "o" + _base36(ref.outbox_mail_id)
    else:
        body = f"d{_base36(ref.digest_id)}.{_base36(ref.subscriber_id)}"
    return f"{body}.{_mac(body, key or _key())}"


def read_token(token: str) -> DeliveryRef:
    """The delivery a token names; raises BadToken for anything we did not sign."""
    token = token.strip().lower()
    body, _, mac = token.rpartition(".")
    if not body or len(token) > 56 or not any(hmac.compare_digest(mac, _mac(body, key))
                                              for key in _accepted_keys()):
        raise BadToken("bad or missing VERP signature")
    kind, ids = body[0], body[1:].split(".")
    try:
        numbers = [int(part, 36) for part in ids]
    except ValueError:
        raise BadToken("malformed VERP token") from None
    if kind == "o" and len(numbers) == 1:
        return DeliveryRef(outbox_mail_id=numbers[0])
    if kind == "d" and len(numbers) == 2:
        return DeliveryRef(digest_id=numbers[0], subscriber_id=numbers[1])
    raise BadToken("malformed VERP token")


def address_for(ref: DeliveryRef) -> str:
    return f"{LOCAL_PART}+{make_token(ref)}@{bounce_domain()}"


class DigestSenders:
    """Envelope senders for one issue's batch: key and domain looked up once."""

    def __init__(self, digest_id: int):
        self.digest_id = digest_id
        self.key = _key()
        self.domain = bounce_domain()
        self.prefix = f"d{_base36(digest_id)}."

    def for_subscriber(self, subscriber_id: int) -> str:
        body = self.prefix + _base36(subscriber_id)
        return f"{LOCAL_PART}+{body}.{_mac(body, self.key)}@{self.domain}"


# A test mail of an issue goes out like a real one, VERP envelope included; its token
# names no delivery (ids start at 1), so a bounce of it is kept but changes no reader.
TEST_MAIL = DeliveryRef(digest_id=0, subscriber_id=0)


class MessageIds:
    """Message-IDs of one issue, ``<TEXT@domain>``: TEXT is the issue's and the reader's
    ids sealed with the bounce key, so it tells nobody how many readers or issues there
    are, yet it is the same for a resend of one delivery (mail systems that deduplicate
    by Message-ID drop the copy) and a provider's report quoting it names the delivery.
    The domain is the From address's, as for every other mail of ours."""

    def __init__(self, digest_id: int):
        self.digest_id, self.key = digest_id, _key()
        self.domain = parse_mailbox(current_app.config["MAIL_FROM"]).domain
        self.seal = Sealer(self.key, "message-id")

    def __call__(self, subscriber_id: int) -> str:
        return f"<{self.seal(self.digest_id, subscriber_id)}@{self.domain}>"


# Mail sent before the ids were sealed: ``<digest-ISSUE.READER@domain>``.
_LEGACY_MESSAGE_ID = re.compile(r"<digest-(\d{1,10})\.(\d{1,10})@")
_MESSAGE_ID = re.compile(r"<([a-z2-7]{26})@")


def ref_in_message_id(message_id: str | None) -> DeliveryRef | None:
    """The delivery a Message-ID of ours names (sealed, or of the old plain format);
    None for anything else. Callers still check that the reader got that message."""
    text = (message_id or "").strip().lower()
    if match := _MESSAGE_ID.search(text):
        ids = open_ids(_accepted_keys(), "message-id", match.group(1), 2)
        return DeliveryRef(digest_id=ids[0], subscriber_id=ids[1]) if ids else None
    if match := _LEGACY_MESSAGE_ID.search(text):
        digest_id, subscriber_id = int(match.group(1)), int(match.group(2))
        if 0 < digest_id <= MAX_ID and 0 < subscriber_id <= MAX_ID:
            return DeliveryRef(digest_id=digest_id, subscriber_id=subscriber_id)
    return None


def message_id_in(text: str) -> str | None:
    """The start of the first Message-ID of ours quoted in a text (a bounce's content),
    enough for ref_in_message_id."""
    lowered = text.lower()
    match = _MESSAGE_ID.search(lowered) or _LEGACY_MESSAGE_ID.search(lowered)
    return match.group(0) if match else None


def token_in_address(address: str) -> str | None:
    """``bounces+TOKEN@domain`` -> TOKEN, when the address is one of ours (any case)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower().rstrip(".") != bounce_domain():
        return None
    name, plus, token = local.partition("+")
    if name.lower() != LOCAL_PART or not plus:
        return None
    return token


def is_bounce_address(address: str) -> bool:
    """An address the bounce receiver accepts mail for: bounces[+anything]@BOUNCE_DOMAIN."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return (domain.lower().rstrip(".") == bounce_domain()
            and local.lower().partition("+")[0] == LOCAL_PART)


def plain_bounce_address() -> str:
    """For mail that names no reader (alerts to editors): bounces land unparked, untied."""
    return f"{LOCAL_PART}@{bounce_domain()}"


def feedback_id(digest_id: int, list_id: str, mail_from: str) -> str:
    """Gmail's Feedback-ID ``campaign:list:type:sender`` (no colons inside a field), so
    Postmaster Tools reports complaint rates per issue, list and sender."""
    def field(text: str) -> str:
        return "".join(c for c in text if c.isascii() and (c.isalnum() or c in ".-_"))[:60]

    return ":".join((f"issue-{digest_id}", field(list_id.strip("<> ")), "digest",
                     field(parse_mailbox(mail_from).domain)))
