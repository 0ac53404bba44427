"""Two-factor login: TOTP (RFC 6238) codes and one-time recovery codes.

TOTP secrets are stored sealed (Fernet: AES and an HMAC) under the key of
``config.totp_keys``, so a copy of the database (a backup, a dump) does not hold
them; the key is a setting, never in the database, and rotates (``reseal_all``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import delete, select, update

from newsletter.config import totp_keys
from newsletter.extensions import db
from newsletter.models import Editor, RecoveryCode, utcnow

log = logging.getLogger(__name__)

RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def new_secret() -> str:
    return pyotp.random_base32()


def pending_secret(editor_id: int, session_key: str, server_key: str) -> str:
    """The secret offered for enrolment in one session: derived on the server, so it
    never travels in the (signed, not encrypted) session cookie, and stable while
    the editor reloads the page."""
    digest = hmac.new(server_key.encode(), f"totp-enrol:{editor_id}:{session_key}".encode(),
                      hashlib.sha256).digest()
    return base64.b32encode(digest[:20]).decode()


def qr_svg(secret: str, email: str, issuer: str) -> str:
    """The enrolment QR code as inline SVG markup, made on the server (no script)."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)
    return segno.make(uri, error="m").svg_inline(scale=4, border=2)


def _matching_step(secret: str, code: str) -> int | None:
    """The 30-second step the code belongs to (now, or one step either side)."""
    code = "".join(str(code).split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp, now = pyotp.TOTP(secret), int(time.time())
    for drift in (0, -1, 1):
        step = now // 30 + drift
        if hmac.compare_digest(totp.at(step * 30), code):
            return step
    return None


def _keys() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in totp_keys(current_app.config)])


def seal(secret: str) -> str:
    return _keys().encrypt(secret.encode()).decode()


def _unsealed(editor: Editor) -> str | None:
    """The editor's TOTP secret, or None when no configured key opens it (logged:
    the editor can still log in with a recovery code)."""
    try:
        return _keys().decrypt(editor.totp_secret.encode()).decode()
    except InvalidToken:
        log.error("the TOTP secret of editor %s opens with no key of NEWSLETTER_TOTP_KEY "
                  "(or its fallbacks, or SECRET_KEY's when it is unset)", editor.id)
        return None


def reseal_all() -> tuple[int, int]:
    """Re-encrypt every TOTP secret with the current key (after a rotation, before the
    old key leaves the fallbacks). Returns (resealed, unreadable)."""
    keys, done, unreadable = _keys(), 0, 0
    for editor in db.session.scalars(select(Editor).where(Editor.totp_secret.is_not(None))):
        try:
            editor.totp_secret = keys.rotate(editor.totp_secret.encode()).decode()
            done += 1
        except InvalidToken:
            unreadable += 1
    return done, unreadable


def _hash(code: str) -> str:
    return hashlib.sha256("".join(str(code).split()).lower().replace("-", "").encode()).hexdigest()


def enrol(editor: Editor, secret: str, code: str) -> list[str] | None:
    """Turns 2FA on if ``code`` proves the authenticator holds ``secret``; returns the
    recovery codes (shown once, stored hashed), or None for a wrong code."""
    step = _matching_step(secret, code)
    if step is None:
        return None
    editor.totp_secret, editor.totp_last_step = seal(secret), step
    codes = []
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == editor.id))
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(editor_id=editor.id, code_hash=_hash(raw)))
    return codes


def verify(editor: Editor, code: str) -> str | None:
    """'totp' or 'recovery' when the code is good (and now spent), else None.
    A TOTP code is accepted once: a code seen on the wire cannot be replayed. The caller
    commits right away, so the code stays spent whatever happens after."""
    if not editor.totp_secret:
        return None
    secret = _unsealed(editor)  # when unreadable, a recovery code still works
    step = _matching_step(secret, code) if secret else None
    if step is not None:
        # Conditional update: two requests racing with one code make one login.
        used = db.session.execute(update(Editor).where(
            Editor.id == editor.id,
            (Editor.totp_last_step.is_(None)) | (Editor.totp_last_step < step))
            .values(totp_last_step=step)).rowcount
        return "totp" if used else None
    row_id = db.session.scalar(select(RecoveryCode.id).where(
        RecoveryCode.editor_id == editor.id, RecoveryCode.code_hash == _hash(code),
        RecoveryCode.used_at.is_(None)))
    if row_id is None:
        return None
    used = db.session.execute(update(RecoveryCode).where(
        RecoveryCode.id == row_id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())).rowcount
    return "recovery" if used else None


def recovery_codes_left(editor_id: int) -> int:
    return len(db.session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.editor_id == editor_id, RecoveryCode.used_at.is_(None))).all())


def disable(editor: Editor) -> None:
    editor.totp_secret, editor.totp_last_step = None, None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == editor.id))
