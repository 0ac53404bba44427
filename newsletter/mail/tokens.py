"""Signed tokens for links in mails; one salt per purpose.

A signature proves we issued a token; single use is a state transition in the
database (the subscriber's ``token_nonce`` rotates), not a property of the token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_SALT = "newsletter.confirm"
UNSUBSCRIBE_SALT = "newsletter.unsubscribe"
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL


class TokenInvalid(Exception):
    """Tampered, truncated or otherwise not a token we issued."""


class TokenExpired(TokenInvalid):
    """Genuine but older than CONFIRM_MAX_AGE."""


@dataclass(frozen=True)
class ConfirmClaim:
    subscriber_id: int
    nonce: str


def _secret() -> list[str]:
    # Key rotation: sign with SECRET_KEY (itsdangerous signs with the last key) and
    # accept links signed with any SECRET_KEY_FALLBACKS, as Flask does for sessions.
    config = current_app.config
    return [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]


# Row ids sealed into one AES block: a token or Message-ID names a row without telling
# anyone its id (how many readers or issues there are, which reader came after which).
SEAL_LENGTH = 26  # 16 bytes in base32, lower case, no padding
ID_BYTES = 4  # ids are 32-bit
_SEALED = re.compile(r"[a-z2-7]{26}")


@functools.lru_cache(maxsize=32)  # a send seals one Message-ID per reader with one key
def _block_cipher(key: bytes, purpose: str) -> Cipher:
    aes_key = hmac.new(key, f"newsletter.seal.{purpose}".encode(), hashlib.sha256).digest()
    # One block, each block distinct (unique ids): AES as a keyed permutation, which is
    # what ECB is safe for; the same ids always seal to the same text.
    return Cipher(algorithms.AES(aes_key), modes.ECB())


def _block(ids: tuple[int, ...]) -> bytes:
    return b"".join(number.to_bytes(ID_BYTES, "big") for number in ids).ljust(16, b"\0")


def _text(sealed: bytes) -> str:
    return base64.b32encode(sealed).decode().lower().rstrip("=")


def seal_ids(key: bytes, purpose: str, *ids: int) -> str:
    """Up to three ids as 26 characters [a-z2-7] that reveal nothing without the key.
    The block's unused bytes are zero, so a forged or mistyped text opens to None
    (1 chance in 2**32 at worst)."""
    encryptor = _block_cipher(key, purpose).encryptor()
    return _text(encryptor.update(_block(ids)) + encryptor.finalize())


class Sealer:
    """``seal_ids`` for many ids with one key and purpose (a send's Message-IDs): one
    cipher context for all of them, as making it was most of a seal's cost. ECB keeps
    no state between blocks, so each block seals as it would alone."""

    def __init__(self, key: bytes, purpose: str):
        self._encryptor = _block_cipher(key, purpose).encryptor()
        self._lock = threading.Lock()  # a context is not to be shared between threads

    def __call__(self, *ids: int) -> str:
        block = _block(ids)
        with self._lock:
            sealed = self._encryptor.update(block)
        return _text(sealed)


def open_ids(keys: Iterable[bytes], purpose: str, text: str, count: int) -> tuple[int, ...] | None:
    """The ``count`` ids sealed with any of ``keys``, or None."""
    if not isinstance(text, str) or not _SEALED.fullmatch(text):
        return None
    sealed = base64.b32decode(text.upper() + "======")
    used = count * ID_BYTES
    for key in keys:
        decryptor = _block_cipher(key, purpose).decryptor()
        block = decryptor.update(sealed) + decryptor.finalize()
        if block[used:] == bytes(16 - used):
            ids = tuple(int.from_bytes(block[i:i + ID_BYTES], "big")
                        for i in range(0, used, ID_BYTES))
            if all(0 < number <= MAX_ID for number in ids):
                return ids
    return None


def _sealed_subscriber(subscriber_id: int) -> str:
    return seal_ids(current_app.config["SECRET_KEY"].encode(), "subscriber", subscriber_id)


def _subscriber_id(value: object) -> int:
    """A sealed subscriber id, or the plain id of a link mailed before ids were sealed
    (still valid for CONFIRM_MAX_AGE after the upgrade). Raises TokenInvalid."""
    if isinstance(value, str):
        opened = open_ids([key.encode() for key in reversed(_secret())], "subscriber", value, 1)
        if opened:
            return opened[0]
    elif isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    raise TokenInvalid("malformed payload")


def make_confirm_token(subscriber_id: int, nonce: str) -> str:
    return URLSafeTimedSerializer(_secret(), salt=CONFIRM_SALT).dumps(
        [_sealed_subscriber(subscriber_id), nonce])


def _load_timed(token: str, salt: str):
    """The payload of a link valid for CONFIRM_MAX_AGE; raises TokenExpired or TokenInvalid."""
    serializer = URLSafeTimedSerializer(_secret(), salt=salt)
    try:
        return serializer.loads(token, max_age=current_app.config["CONFIRM_MAX_AGE"])
    except SignatureExpired:
        raise TokenExpired("expired") from None
    except BadSignature:
        raise TokenInvalid("bad signature") from None


def read_confirm_token(token: str) -> ConfirmClaim:
    payload = _load_timed(token, CONFIRM_SALT)
    if not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[1], str):
        raise TokenInvalid("malformed payload")
    return ConfirmClaim(subscriber_id=_subscriber_id(payload[0]), nonce=payload[1])


# The link in the mail that confirms a new address (from the preference centre). It
# names the reader, their nonce (rotated by any state change and by the switch, so the
# link works once) and the address, which must still be the one waiting.
ADDRESS_SALT = "newsletter.change-address"


@dataclass(frozen=True)
class AddressClaim:
    subscriber_id: int
    nonce: str
    email: str


def make_address_token(subscriber_id: int, nonce: str, email: str) -> str:
    return URLSafeTimedSerializer(_secret(), salt=ADDRESS_SALT).dumps(
        [_sealed_subscriber(subscriber_id), nonce, email])


def read_address_token(token: str) -> AddressClaim:
    payload = _load_timed(token, ADDRESS_SALT)
    if (not isinstance(payload, list) or len(payload) != 3
            or not all(isinstance(value, str) for value in payload[1:])):
        raise TokenInvalid("malformed payload")
    return AddressClaim(_subscriber_id(payload[0]), payload[1], payload[2])


# "View in your browser" in a personal copy: the issue and the copy (the variant a
# reader's row names) sealed together, so the link opens exactly the sections that
# reader got, needs no login and names no reader (readers of the same topics who had
# the same articles before share a copy and its link). Only the key can make one.
WEB_COPY_PURPOSE = "web-copy"


def make_web_copy_token(digest_id: int, variant_id: int) -> str:
    return seal_ids(current_app.config["SECRET_KEY"].encode(), WEB_COPY_PURPOSE,
                    digest_id, variant_id)


def read_web_copy_token(token: object) -> tuple[int, int]:
    """(issue id, copy id); raises TokenInvalid for anything we did not issue."""
    opened = open_ids([key.encode() for key in reversed(_secret())], WEB_COPY_PURPOSE,
                      token, 2)
    if opened is None:
        raise TokenInvalid("not a web copy token")
    return opened[0], opened[1]


# "Keep me subscribed" in the sunset policy's re-engagement mail: the reader's id sealed
# like a web copy's, so only the key makes one and it tells no one the id.
KEEP_PURPOSE = "keep-subscribed"


def make_keep_token(subscriber_id: int) -> str:
    return seal_ids(current_app.config["SECRET_KEY"].encode(), KEEP_PURPOSE, subscriber_id)


def read_keep_token(token: object) -> int:
    """The reader's id; raises TokenInvalid for anything we did not issue."""
    opened = open_ids([key.encode() for key in reversed(_secret())], KEEP_PURPOSE, token, 1)
    if opened is None:
        raise TokenInvalid("not a keep token")
    return opened[0]


# Unsubscribe links carry the subscriber's random ``unsubscribe_key`` (see models/readers.py).
# Mails sent before it existed carry ``URLSafeSerializer(SECRET_KEY).dumps(id)``
# ("MTIz.<signature>"): still accepted while LEGACY_UNSUBSCRIBE_LINKS is on, so
# every mail already in an inbox can still unsubscribe.
UNSUBSCRIBE_KEY = re.compile(r"[A-Za-z0-9_-]{16,32}")


def is_unsubscribe_key(token: str) -> bool:
    return UNSUBSCRIBE_KEY.fullmatch(token) is not None


def make_legacy_unsubscribe_token(subscriber_id: int) -> str:
    """The old format, for tests of old mails only: new links use the unsubscribe key."""
    return URLSafeSerializer(_secret(), salt=UNSUBSCRIBE_SALT).dumps(subscriber_id)


def read_legacy_unsubscribe_token(token: str) -> int:
    if not current_app.config["LEGACY_UNSUBSCRIBE_LINKS"]:
        raise TokenInvalid("old-format unsubscribe links are no longer accepted")
    try:
        payload = URLSafeSerializer(_secret(), salt=UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        raise TokenInvalid("bad signature") from None
    if not isinstance(payload, int) or isinstance(payload, bool) or not 0 < payload <= MAX_ID:
        raise TokenInvalid("malformed payload")
    return payload


# The subscribe form's token. The form also works inside a cross-site iframe,
# where the session cookie (SameSite=Lax) is never sent, so its CSRF token cannot
# live in the session: it is signed, expires, and is bound to the client address
# that fetched the form (a token fetched by an attacker's server does not work
# from a victim's browser).
FORM_SALT = "newsletter.form.subscribe"
FORM_TOKEN_MAX_AGE = 24 * 3600  # a form left open for a day still submits


def _client_tag(key: str, client: str | None) -> str:
    return hashlib.sha256(f"{key}:{client or ''}".encode()).hexdigest()[:16]


def make_form_token(client: str | None) -> str:
    return URLSafeTimedSerializer(_secret(), salt=FORM_SALT).dumps(
        _client_tag(current_app.config["SECRET_KEY"], client))


def check_form_token(token: object, client: str | None) -> None:
    """Raises TokenExpired or TokenInvalid."""
    if not isinstance(token, str) or not token or len(token) > 200:
        raise TokenInvalid("missing form token")
    try:
        tag = URLSafeTimedSerializer(_secret(), salt=FORM_SALT).loads(
            token, max_age=FORM_TOKEN_MAX_AGE)
    except SignatureExpired:
        raise TokenExpired("form token expired") from None
    except BadSignature:
        raise TokenInvalid("bad form token") from None
    # Tagged with whichever key was current then: a form opened before a key rotation
    # still submits.
    if not isinstance(tag, str) or not any(hmac.compare_digest(tag, _client_tag(key, client))
                                           for key in _secret()):
        raise TokenInvalid("form token issued to another client")

