"""Editors and their API tokens."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from newsletter.extensions import db
from newsletter.mail.addresses import check_email
from newsletter.models import ApiToken, Editor, utcnow


class EditorError(ValueError):
    pass


def create_editor(email: str, password: str) -> Editor:
    address = check_email(email)
    if len(password) < 10:
        raise EditorError("A password has at least 10 characters.")
    if db.session.scalar(select(Editor).where(Editor.email == address.normalized)):
        raise EditorError(f"An editor {address.normalized} exists already.")
    editor = Editor(email=address.normalized,
                    password_hash=generate_password_hash(password, method="scrypt"))
    db.session.add(editor)
    db.session.commit()
    return editor


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(editor_email: str, name: str = "") -> str:
    """A new token, shown once; only its hash is kept."""
    editor = db.session.scalar(select(Editor).where(Editor.email == editor_email.lower()))
    if editor is None:
        raise EditorError(f"No editor {editor_email}.")
    token = "nl_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(editor_id=editor.id, token_hash=_hash(token), name=name[:100]))
    db.session.commit()
    return token


def editor_for_token(token: str) -> Editor | None:
    api_token = db.session.scalar(select(ApiToken).where(
        ApiToken.token_hash == _hash(token), ApiToken.revoked_at.is_(None)))
    return api_token.editor if api_token else None


# Checked when the address is unknown, so a wrong address takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password", method="scrypt")


def authenticate(email: str, password: str) -> Editor | None:
    editor = db.session.scalar(select(Editor).where(Editor.email == str(email).strip().lower()))
    if editor is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return editor if check_password_hash(editor.password_hash, password) else None


def load_editor(editor_id: str) -> Editor | None:
    return db.session.get(Editor, int(editor_id)) if editor_id.isdigit() else None


def list_tokens(editor_id: int) -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).where(
        ApiToken.editor_id == editor_id).order_by(ApiToken.id.desc())))


def revoke_token(editor_id: int, token_id: int) -> bool:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.editor_id != editor_id or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    db.session.commit()
    return True
