"""Editors, their roles, invitations and API tokens.

These functions write into the caller's transaction and never commit: the view or
command that calls them commits the change with its audit record."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from newsletter.editors import editor_mail, sessions
from newsletter.extensions import db
from newsletter.mail.addresses import check_email
from newsletter.mail.headers import clean_text
from newsletter.models import (
    ApiToken,
    Editor,
    EditorMailKind,
    Role,
    new_token_nonce,
    utcnow,
)

# What each scope lets a token do, and the least role its editor must hold for it.
SCOPES: dict[str, Role] = {
    "articles:write": Role.AUTHOR,
    "issues:send": Role.EDITOR,
    "subscribers:read": Role.EDITOR,
    "subscribers:write": Role.EDITOR,
    "sequences:read": Role.EDITOR,
    "webhooks:read": Role.OWNER,
    "webhooks:write": Role.OWNER,
    "metrics:read": Role.OWNER,  # GET /metrics: operations figures for Prometheus
}
MIN_PASSWORD = 10


class EditorError(ValueError):
    pass


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise EditorError(f"A password has at least {MIN_PASSWORD} characters.")


def _parse_role(role: str | Role | None) -> Role | None:
    if role is None or isinstance(role, Role):
        return role
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        raise EditorError(f"No role {role!r}: choose owner, editor or author.") from None


def find_editor(email: str) -> Editor | None:
    return db.session.scalar(select(Editor).where(Editor.email == str(email).strip().lower()))


def create_editor(email: str, password: str | None, role: str | Role | None = None) -> Editor:
    """The first editor is always an owner; later ones are editors unless told.
    Without a password the account cannot log in until an invitation sets one."""
    address = check_email(email)
    wanted = _parse_role(role)
    if password is not None:
        _check_password(password)
    if find_editor(address.normalized):
        raise EditorError(f"An editor {address.normalized} exists already.")
    first = db.session.scalar(select(func.count()).select_from(Editor)) == 0
    editor = Editor(email=address.normalized,
                    role=Role.OWNER if first else (wanted or Role.EDITOR),
                    password_hash=generate_password_hash(
                        password if password is not None else secrets.token_urlsafe(32),
                        method="scrypt"))
    db.session.add(editor)
    db.session.flush()  # its id, for the invitation and the audit log
    return editor


def invite_editor(email: str, role: str | Role) -> Editor:
    """A new editor with no usable password, and an invitation mail owed to them."""
    editor = create_editor(email, None, _parse_role(role) or Role.EDITOR)
    editor_mail.owe(editor.id, EditorMailKind.INVITE)
    return editor


def set_password(editor: Editor, password: str) -> None:
    """Sets the password, voids open invitation links and ends every session."""
    _check_password(password)
    editor.password_hash = generate_password_hash(password, method="scrypt")
    editor.password_nonce = new_token_nonce()
    sessions.end_all(editor.id)


def _owner_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Editor).where(
        Editor.role == Role.OWNER, Editor.removed_at.is_(None)))


def change_role(editor_id: int, role: str | Role) -> Editor:
    editor = db.session.get(Editor, editor_id)
    new_role = _parse_role(role)
    if editor is None or editor.removed_at:
        raise EditorError("No such editor.")
    if editor.role == Role.OWNER and new_role != Role.OWNER and _owner_count() == 1:
        raise EditorError("The last owner cannot step down: make another editor owner first.")
    editor.role = new_role
    return editor


def remove_editor(editor_id: int) -> Editor:
    """Keeps the row (the audit log names it), ends its sessions and tokens."""
    editor = db.session.get(Editor, editor_id)
    if editor is None or editor.removed_at:
        raise EditorError("No such editor.")
    if editor.role == Role.OWNER and _owner_count() == 1:
        raise EditorError("The last owner cannot be removed.")
    editor.removed_at = utcnow()
    editor.password_hash = generate_password_hash(secrets.token_urlsafe(32), method="scrypt")
    for token in list_tokens(editor.id):
        token.revoked_at = token.revoked_at or utcnow()
    sessions.end_all(editor.id)
    return editor


def list_editors() -> list[Editor]:
    return list(db.session.scalars(select(Editor).order_by(Editor.removed_at.is_not(None),
                                                           Editor.email)))


# --- API tokens ---------------------------------------------------------------------------

def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes) -> list[str]:
    wanted = sorted({str(scope).strip() for scope in scopes if str(scope).strip()})
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise EditorError(f"Unknown scope {unknown[0]!r}: choose from {', '.join(SCOPES)}.")
    if not wanted:
        raise EditorError("Give the token at least one scope.")
    return wanted


def create_api_token(editor_email: str, name: str, scopes=("articles:write",),
                     expires_days: int | None = None) -> tuple[str, ApiToken]:
    """A new token, shown once; only its hash is kept. The name says what it is for
    (the list of tokens is read to decide which one to revoke)."""
    name = clean_text(name)
    if not name:
        raise EditorError("Give the token a name that says what it is for.")
    if len(name) > 100:
        raise EditorError("A token's name has at most 100 characters.")
    editor = find_editor(editor_email)
    if editor is None or editor.removed_at:
        raise EditorError(f"No editor {editor_email}.")
    wanted = parse_scopes(scopes)
    beyond = [scope for scope in wanted if not editor.role.allows(SCOPES[scope])]
    if beyond:
        raise EditorError(f"An {editor.role.value} cannot hold the scope {beyond[0]}.")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise EditorError("A token expires after 1 to 3650 days.")
    token = "nl_" + secrets.token_urlsafe(32)
    row = ApiToken(editor_id=editor.id, token_hash=_hash(token), name=name,
                   scopes=" ".join(wanted),
                   expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None)
    db.session.add(row)
    db.session.flush()  # its id, for the audit log
    return token, row


@dataclass(frozen=True)
class TokenCheck:
    token: ApiToken | None
    problem: str | None = None  # why the token does not count
    missing_scope: str | None = None


def check_token(token: str, scope: str, ip_address: str | None) -> TokenCheck:
    """Is this a live token allowed ``scope``? Records when and from where it was used."""
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None or row.editor.removed_at is not None:
        return TokenCheck(None, "unknown or revoked token")
    if row.expires_at is not None and row.expires_at <= utcnow():
        return TokenCheck(row, "this token has expired")
    row.last_used_at, row.last_used_ip = utcnow(), ip_address and ip_address[:45]
    if scope not in row.scope_list or not row.editor.role.allows(SCOPES[scope]):
        return TokenCheck(row, f"this token lacks the scope {scope}", missing_scope=scope)
    return TokenCheck(row)


def list_tokens(editor_id: int | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if editor_id is not None:
        query = query.where(ApiToken.editor_id == editor_id)
    return list(db.session.scalars(query))


def revoke_token(token_id: int) -> ApiToken | None:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return None
    token.revoked_at = utcnow()
    return token


# --- passwords ----------------------------------------------------------------------------

# Checked when the address is unknown, so a wrong address takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password", method="scrypt")


def authenticate(email: str, password: str) -> Editor | None:
    editor = find_editor(email)
    if editor is None or editor.removed_at is not None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return editor if check_password_hash(editor.password_hash, password) else None


def load_editor(editor_id: str) -> Editor | None:
    return db.session.get(Editor, int(editor_id)) if str(editor_id).isdigit() else None


def owners() -> list[Editor]:
    return list(db.session.scalars(select(Editor).where(
        Editor.role == Role.OWNER, Editor.removed_at.is_(None)).order_by(Editor.id)))


def is_owner(editor: Editor | None) -> bool:
    return (editor is not None and getattr(editor, "is_authenticated", True)
            and editor.role == Role.OWNER)
