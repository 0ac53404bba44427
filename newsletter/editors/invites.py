"""Invitation links: signed, valid for a week, void once the password is set."""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from newsletter.extensions import db
from newsletter.models import Editor

INVITE_SALT = "newsletter.editor-invite"
INVITE_MAX_AGE = 7 * 24 * 3600


def _invite_serializer() -> URLSafeTimedSerializer:
    config = current_app.config
    return URLSafeTimedSerializer([*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]],
                                  salt=INVITE_SALT)


def make_invite_token(editor: Editor) -> str:
    return _invite_serializer().dumps([editor.id, editor.password_nonce])


def editor_for_invite(token: str) -> Editor | None:
    """The invited editor, if the link is genuine, fresh and not used yet."""
    try:
        editor_id, nonce = _invite_serializer().loads(token, max_age=INVITE_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    editor = db.session.get(Editor, editor_id) if isinstance(editor_id, int) else None
    if editor is None or editor.removed_at or editor.password_nonce != nonce:
        return None
    return editor
