"""Signed tokens for links in mails; one salt per purpose.

A signature proves we issued a token; single use is a state transition in the
database (the subscriber's ``token_nonce`` rotates), not a property of the token.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_SALT = "newsletter.confirm"
UNSUBSCRIBE_SALT = "newsletter.unsubscribe"


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


def read_confirm_token(token: str) -> ConfirmClaim:
    serializer = URLSafeTimedSerializer(_secret(), salt=CONFIRM_SALT)
    try:
        payload = serializer.loads(token, max_age=current_app.config["CONFIRM_MAX_AGE"])
    except SignatureExpired:
        raise TokenExpired("expired") from None
    except BadSignature:
        raise TokenInvalid("bad signature") from None
    if (not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[0], int)
            or not isinstance(payload[1], str)):
        raise TokenInvalid("malformed payload")
    return ConfirmClaim(subscriber_id=payload[0], nonce=payload[1])


def make_unsubscribe_token(subscriber_id: int) -> str:
    return unsubscribe_serializer().dumps(subscriber_id)


def unsubscribe_serializer() -> URLSafeSerializer:
    # Unsubscribe links never expire: an old mail must always let a reader leave.
    return URLSafeSerializer(_secret(), salt=UNSUBSCRIBE_SALT)


def read_unsubscribe_token(token: str) -> int:
    try:
        payload = unsubscribe_serializer().loads(token)
    except BadSignature:
        raise TokenInvalid("bad signature") from None
    if not isinstance(payload, int):
        raise TokenInvalid("malformed payload")
    return payload
