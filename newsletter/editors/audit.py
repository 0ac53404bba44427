"""The audit log: an append-only record of what editors and tokens did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from newsletter.extensions import db
from newsletter.models import AuditEvent

PAGE_SIZE = 50


@dataclass(frozen=True)
class Actor:
    """Who acts: an editor (by id and address), maybe through a token, from an address."""

    editor_id: int | None
    email: str
    ip_address: str | None = None
    token_id: int | None = None


CLI = Actor(editor_id=None, email="cli")


def record(actor: Actor, action: str, *, outcome: str = "ok", target: str | None = None,
           detail: str | None = None) -> None:
    """Adds one record to the caller's transaction, so the action and its record are
    committed together, or neither is. A refusal is recorded too: its boundary commits
    the record although it refuses the request."""
    db.session.add(AuditEvent(
        editor_id=actor.editor_id, actor=actor.email[:254], token_id=actor.token_id,
        ip_address=actor.ip_address and actor.ip_address[:45], action=action[:64],
        outcome=outcome, target=target and str(target)[:200], detail=detail and detail[:2000]))


def search(actor: str = "", action: str = "", outcome: str = "",
           since: datetime | None = None, until: datetime | None = None,
           page: int = 1) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if actor:
        query = query.where(AuditEvent.actor.contains(actor.strip().lower(), autoescape=True))
    if action:
        query = query.where(AuditEvent.action == action)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return list(db.session.scalars(query.offset((max(page, 1) - 1) * PAGE_SIZE)
                                    .limit(PAGE_SIZE)))


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).distinct()
                                   .order_by(AuditEvent.action)))


@event.listens_for(Session, "before_flush")
def _append_only(session: Session, flush_context, instances) -> None:
    """Nothing in the application may change or delete an audit record."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted
                                            or session.is_modified(obj)):
            raise RuntimeError("the audit log is append-only")
