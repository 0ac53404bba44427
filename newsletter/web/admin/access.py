"""The editor workspace's one blueprint and its one access rule.

Every view declares who may open it (``allow``); ``check_access`` runs before each
view of the blueprint and refuses a view without a declaration, so a new route cannot
be left open by mistake (the role-matrix test fails too). Also here: the session's
user loader, the audit helpers every area uses, and the same-site redirect check.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import current_user

from newsletter.editors import accounts, audit, sessions
from newsletter.extensions import db, login_manager
from newsletter.models import Role
from newsletter.web.errors import error_response

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)

PUBLIC = "public"  # no login: the login pages and invitation links
ANY_EDITOR = "any"  # any logged-in editor, whatever the role
# Requests a page makes by itself: they must not keep an idle session alive.
PASSIVE_ENDPOINTS = {"admin.digest_progress", "admin.import_job"}
# What an editor who must enrol 2FA first may still open.
ENROLMENT_ENDPOINTS = {"admin.account", "admin.enable_two_factor", "admin.logout",
                       "admin.end_all_sessions"}


def allow(who):
    """Declare the least role (a Role), ANY_EDITOR or PUBLIC for a view."""
    def mark(view):
        view.allowed_role = who
        return view
    return mark


@login_manager.user_loader
def _load_editor(user_id: str):
    """The editor of a session that still counts on the server, else anonymous."""
    editor = accounts.load_editor(user_id)
    if editor is None or not editor.is_active:
        return None
    live = sessions.find_live(editor.id, session.get("sk"),
                              activity=request.endpoint not in PASSIVE_ENDPOINTS)
    if db.session.dirty:  # the session was touched, or has just run out: keep that
        db.session.commit()
    return editor if live is not None else None


def current_actor() -> audit.Actor:
    """Who does this request: the logged-in editor, else "anonymous"."""
    if current_user.is_authenticated:
        return audit.Actor(current_user.id, current_user.email, request.remote_addr)
    return audit.Actor(None, "anonymous", request.remote_addr)


def record_action(action: str, *, outcome: str = "ok", target=None, detail: str | None = None,
                  actor: audit.Actor | None = None) -> None:
    """One row of the audit log, by ``actor`` or this request's editor, written into the
    request's open transaction: inside a ``unit_of_work`` it commits with the action."""
    audit.record(actor or current_actor(), action, outcome=outcome,
                 target=None if target is None else str(target), detail=detail)


def audit_action(action: str, *, outcome: str = "ok", target=None, detail: str | None = None,
                 actor: audit.Actor | None = None) -> None:
    """``record_action`` and the commit of the request's transaction: called after the
    action's writes, it commits them and their record together. A refusal's record is
    committed although the request fails."""
    record_action(action, outcome=outcome, target=target, detail=detail, actor=actor)
    db.session.commit()


def two_factor_missing() -> bool:
    """Two-factor login is required here and this editor has not set it up yet."""
    return current_app.config["REQUIRE_TWO_FACTOR"] and not current_user.totp_secret


@bp.before_request
def check_access():
    view = current_app.view_functions.get(request.endpoint)
    needed = getattr(view, "allowed_role", None)
    if needed == PUBLIC:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if needed is None:
        audit_action("access", outcome="denied", target=request.endpoint,
                     detail="no role declared")
        return error_response(403, "This page declares no role, so nobody may open it.")
    if two_factor_missing() and request.endpoint not in ENROLMENT_ENDPOINTS:
        flash("Set up two-factor login to continue: it is required for every editor.",
              "error")
        return redirect(url_for("admin.account"))
    if needed != ANY_EDITOR and not current_user.role.allows(needed):
        audit_action("access", outcome="denied", target=request.endpoint,
                     detail=f"needs {needed.value}, has {current_user.role.value}")
        return error_response(403, f"This needs the {needed.value} role; you are "
                                   f"{current_user.role.value}.")
    return None


def landing() -> str:
    """The first page after login: the dashboard, or the articles for an author."""
    if current_user.is_authenticated and current_user.role.allows(Role.EDITOR):
        return url_for("admin.dashboard")
    return url_for("admin.articles_page")


def local_path(target: str | None) -> str:
    """Only same-site paths: never an open redirect to another host. Browsers read
    ``//host``, ``/\\host`` and ``/<TAB>/host`` (they drop tabs and newlines) as
    another host, so those are refused along with every control character."""
    if not target:
        return landing()
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target)):
        log.warning("refused redirect target %r", target[:200])
        return landing()
    return target
