"""Signed tokens for links in mails; one salt per purpose.

A signature proves we issued a token; single use is a state transition in the
database (the subscriber's ``token_nonce`` rotates), not a property of the token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

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


def make_confirm_token(subscriber_id: int, nonce: str) -> str:
    return URLSafeTimedSerializer(_secret(), salt=CONFIRM_SALT).dumps([subscriber_id, nonce])


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
    if (not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[0], int)
            or isinstance(payload[0], bool) or not 0 < payload[0] <= MAX_ID
            or not isinstance(payload[1], str)):
        raise TokenInvalid("malformed payload")
    return ConfirmClaim(subscriber_id=payload[0], nonce=payload[1])


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
        [subscriber_id, nonce, email])


def read_address_token(token: str) -> AddressClaim:
    payload = _load_timed(token, ADDRESS_SALT)
    if (not isinstance(payload, list) or len(payload) != 3 or not isinstance(payload[0], int)
            or isinstance(payload[0], bool) or not 0 < payload[0] <= MAX_ID
            or not all(isinstance(value, str) for value in payload[1:])):
        raise TokenInvalid("malformed payload")
    return AddressClaim(*payload)


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


def _client_tag(client: str | None) -> str:
    return hashlib.sha256(f"{_secret()}:{client or ''}".encode()).hexdigest()[:16]


def make_form_token(client: str | None) -> str:
    return URLSafeTimedSerializer(_secret(), salt=FORM_SALT).dumps(_client_tag(client))


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
    if not isinstance(tag, str) or not hmac.compare_digest(tag, _client_tag(client)):
        if not _signed_with_current_key(token):  # the tag changes with the keys too
            raise TokenInvalid("form token signed with a previous SECRET_KEY (a key "
                               "rotation since the form was shown), not a proxy problem")
        raise TokenInvalid("form token issued to another client")


def _signed_with_current_key(token: str) -> bool:
    try:
        URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=FORM_SALT).loads(token)
    except BadSignature:
        return False
    return True
