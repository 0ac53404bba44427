"""Editor sessions kept on the server, so that a copied cookie can be revoked.

The signed cookie holds only a random session key; the row it names says whether
the session still counts. Logging out ends the row, so every copy of the cookie
stops working at once; so do the idle timeout and the absolute lifetime, which
activity never extends.

Nothing here commits: the login, the logout and the user loader (which keeps a touch
or an expiry) commit.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_, select, update

from newsletter.extensions import db
from newsletter.models import EditorSession, utcnow

# Seen-time is written at most this often: a page polling every second costs no writes.
TOUCH_EVERY = timedelta(seconds=60)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start(editor_id: int, ip_address: str | None, user_agent: str | None) -> str:
    # Sessions over for a day are forgotten at the editor's next login (the audit
    # log keeps the logins and logouts).
    forget = utcnow() - timedelta(seconds=current_app.config["SESSION_MAX_AGE"], days=1)
    db.session.execute(delete(EditorSession).where(
        EditorSession.editor_id == editor_id,
        or_(EditorSession.ended_at < utcnow() - timedelta(days=1),
            EditorSession.created_at < forget)))
    key = secrets.token_urlsafe(32)
    db.session.add(EditorSession(editor_id=editor_id, key_hash=_hash(key),
                                 ip_address=ip_address and ip_address[:45],
                                 user_agent=user_agent and user_agent[:512]))
    return key


def find_live(editor_id: int, key: str | None, *, activity: bool = True) -> EditorSession | None:
    """The session if it still counts; ``activity`` False for requests a page makes
    by itself (polling), which must not keep an idle session alive."""
    if not key or not isinstance(key, str):
        return None
    row = db.session.scalar(select(EditorSession).where(EditorSession.key_hash == _hash(key)))
    if row is None or row.editor_id != editor_id or row.ended_at is not None:
        return None
    now, config = utcnow(), current_app.config
    if (now - row.created_at > timedelta(seconds=config["SESSION_MAX_AGE"])
            or now - row.last_seen_at > timedelta(seconds=config["SESSION_IDLE_TIMEOUT"])):
        row.ended_at = now
        return None
    if activity and now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(key: str | None) -> None:
    if key and isinstance(key, str):
        db.session.execute(update(EditorSession).where(
            EditorSession.key_hash == _hash(key), EditorSession.ended_at.is_(None))
            .values(ended_at=utcnow()))


def end_all(editor_id: int) -> int:
    ended = db.session.execute(update(EditorSession).where(
        EditorSession.editor_id == editor_id, EditorSession.ended_at.is_(None))
        .values(ended_at=utcnow())).rowcount
    return ended


def live_sessions(editor_id: int) -> list[EditorSession]:
    cutoff = utcnow() - timedelta(seconds=current_app.config["SESSION_MAX_AGE"])
    return list(db.session.scalars(select(EditorSession).where(
        EditorSession.editor_id == editor_id, EditorSession.ended_at.is_(None),
        EditorSession.created_at > cutoff).order_by(EditorSession.id.desc())))
