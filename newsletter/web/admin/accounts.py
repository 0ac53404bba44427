"""Editors' accounts: login (with the second factor), logout, the account page (two-factor
login, sessions), accepting an invitation, and the owners' editors page (invite, roles,
removal)."""

from __future__ import annotations

import time

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from newsletter.editors import (
    accounts,
    audit,
    editor_mail,
    invites,
    login_throttle,
    sessions,
    two_factor,
)
from newsletter.extensions import db, limiter
from newsletter.mail.addresses import InvalidAddress
from newsletter.models import EditorMailKind, Role
from newsletter.web.admin.access import (
    ANY_EDITOR,
    PUBLIC,
    allow,
    audit_action,
    bp,
    local_path,
    two_factor_missing,
)
from newsletter.web.errors import error_response

PENDING_LOGIN_SECONDS = 300  # to type the second factor after the password


def _login_limit_key() -> str:
    return "login:" + login_throttle.client_network(request.remote_addr)


def _guesser(email: str) -> str:
    """Who tries: this browser if it logged in as ``email`` before, else its network."""
    return login_throttle.guesser(email, request.remote_addr,
                                  request.cookies.get(login_throttle.DEVICE_COOKIE))


def _throttled(email: str, wait: int):
    audit_action("login", outcome="throttled", actor=audit.Actor(None, email or "-",
                                                                 request.remote_addr))
    flash(f"Too many failed logins for this account from here. Try again in {wait} s.",
          "error")
    return render_template("admin/login.html", email=email), 429, {"Retry-After": str(wait)}


def _failed(email: str, editor_id: int | None, action: str, detail: str) -> None:
    failures = login_throttle.record_failure(email, _guesser(email))
    if editor_id is not None and failures == current_app.config["LOGIN_ALERT_AFTER"]:
        editor_mail.owe(editor_id, EditorMailKind.LOGIN_ALERT)
    # Commits the record (and the alert) although the login is refused.
    audit_action(action, outcome="failed", detail=detail,
                 actor=audit.Actor(editor_id, email or "-", request.remote_addr), target=None)


@bp.route("/login", methods=["GET", "POST"])
@allow(PUBLIC)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_login_limit_key,
               methods=["POST"])
def login():
    if request.method == "GET":
        return render_template("admin/login.html", email="")
    email = request.form.get("email", "").strip().lower()[:254]
    wait = login_throttle.wait_seconds(email, _guesser(email))
    if wait:
        return _throttled(email, wait)
    editor = accounts.authenticate(email, request.form.get("password", ""))
    if editor is None:
        known = accounts.find_editor(email)
        _failed(email, known.id if known else None, "login", "wrong email or password")
        flash("That email and password do not match an editor.", "error")
        return render_template("admin/login.html", email=email), 401
    next_path = request.args.get("next")
    session.clear()  # nothing from before the login survives it
    if editor.totp_secret:
        session["pending_login"] = {"editor": editor.id, "at": time.time(),
                                    "next": next_path}
        return redirect(url_for("admin.login_second_factor"))
    return _complete_login(editor, "password", next_path)


def _complete_login(editor, method: str, next_path: str | None):
    session.clear()
    session["sk"] = sessions.start(editor.id, request.remote_addr,
                                          request.headers.get("User-Agent"))
    session.permanent = True  # the cookie may live SESSION_MAX_AGE; the server decides
    login_user(editor)
    login_throttle.reset(editor.email, _guesser(editor.email))
    audit_action("login", detail=method)
    response = redirect(url_for("admin.account") if two_factor_missing()
                        else local_path(next_path))
    # This browser is a known device for this address from now on: guessing from its
    # network does not make its owner wait.
    response.set_cookie(login_throttle.DEVICE_COOKIE, login_throttle.device_cookie(editor.email),
                        max_age=login_throttle.DEVICE_MAX_AGE, path=url_for("admin.login"),
                        secure=current_app.config["SESSION_COOKIE_SECURE"],
                        httponly=True, samesite="Lax")
    return response


def _pending_editor():
    pending = session.get("pending_login")
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > (
            PENDING_LOGIN_SECONDS):
        return None, None
    editor = accounts.load_editor(str(pending.get("editor")))
    return (editor, pending) if editor is not None and editor.is_active else (None, None)


def _spend_code(editor, code: str) -> str | None:
    """Checks a second-factor code (``two_factor.verify``); a good one is spent now,
    committed whatever happens next, so it never works twice."""
    method = two_factor.verify(editor, code)
    db.session.commit()
    return method


@bp.route("/login/verify", methods=["GET", "POST"])
@allow(PUBLIC)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_login_limit_key,
               methods=["POST"])
def login_second_factor():
    editor, pending = _pending_editor()
    if editor is None:
        session.pop("pending_login", None)
        flash("Log in with your email and password first.", "error")
        return redirect(url_for("admin.login"))
    if request.method == "GET":
        return render_template("admin/login_verify.html")
    wait = login_throttle.wait_seconds(editor.email, _guesser(editor.email))
    if wait:
        return _throttled(editor.email, wait)
    method = _spend_code(editor, request.form.get("code", ""))
    if method is None:
        _failed(editor.email, editor.id, "login_2fa", "wrong, expired or used code")
        flash("That code is wrong, expired or already used.", "error")
        return render_template("admin/login_verify.html"), 401
    return _complete_login(editor, method, pending.get("next"))


@bp.post("/logout")
@allow(ANY_EDITOR)
def logout():
    sessions.end(session.get("sk"))  # every copy of this cookie stops working
    audit_action("logout")  # commits
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/account")
@allow(ANY_EDITOR)
def account():
    context = {"sessions": sessions.live_sessions(current_user.id),
               "current_key": session.get("sk"), "qr": None, "recovery_codes": None,
               "codes_left": two_factor.recovery_codes_left(current_user.id)}
    if not current_user.totp_secret:
        secret = _pending_totp_secret()
        context.update(qr=two_factor.qr_svg(secret, current_user.email,
                                            current_app.config["SITE_NAME"]), secret=secret)
    return render_template("admin/account.html", **context)


def _pending_totp_secret() -> str:
    return two_factor.pending_secret(current_user.id, session["sk"],
                                     current_app.config["SECRET_KEY"])


@bp.post("/account/2fa/enable")
@allow(ANY_EDITOR)
def enable_two_factor():
    if current_user.totp_secret:
        return redirect(url_for("admin.account"))
    codes = two_factor.enrol(current_user, _pending_totp_secret(), request.form.get("code", ""))
    if codes is None:
        audit_action("2fa_enable", outcome="failed", detail="wrong code")
        flash("That code does not match: check the time on your phone and try again.",
              "error")
        return redirect(url_for("admin.account"))
    audit_action("2fa_enable")
    return render_template("admin/account.html", recovery_codes=codes, qr=None,
                           sessions=sessions.live_sessions(current_user.id),
                           current_key=session.get("sk"),
                           codes_left=len(codes))


@bp.post("/account/2fa/disable")
@allow(ANY_EDITOR)
def disable_two_factor():
    if current_app.config["REQUIRE_TWO_FACTOR"]:
        audit_action("2fa_disable", outcome="denied", detail="two-factor login is required")
        flash("Two-factor login is required for every editor here.", "error")
    elif _spend_code(current_user, request.form.get("code", "")) is None:
        audit_action("2fa_disable", outcome="failed", detail="wrong code")
        flash("That code is wrong, expired or already used.", "error")
    else:
        two_factor.disable(current_user)
        audit_action("2fa_disable")
        flash("Two-factor login is off.", "ok")
    return redirect(url_for("admin.account"))


@bp.post("/account/sessions/end-all")
@allow(ANY_EDITOR)
def end_all_sessions():
    ended = sessions.end_all(current_user.id)
    audit_action("logout_all", detail=f"{ended} session(s)")
    logout_user()
    session.clear()
    flash(f"Logged out of {ended} session(s), this one included.", "ok")
    return redirect(url_for("admin.login"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
@allow(PUBLIC)
def accept_invite(token: str):
    editor = invites.editor_for_invite(token)
    if editor is None:
        return error_response(404, "This invitation link is not valid any more: it was "
                                   "used, it expired, or a newer one was sent.")
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            flash("The two passwords differ.", "error")
            return render_template("admin/invite.html", editor=editor), 400
        try:
            accounts.set_password(editor, password)
        except accounts.EditorError as error:
            flash(str(error), "error")
            return render_template("admin/invite.html", editor=editor), 400
        audit_action("invite_accepted", actor=audit.Actor(editor.id, editor.email,
                                                          request.remote_addr))
        flash("Your password is set: log in.", "ok")
        return redirect(url_for("admin.login"))
    return render_template("admin/invite.html", editor=editor)


@bp.route("/editors", methods=["GET", "POST"])
@allow(Role.OWNER)
def editors_page():
    if request.method == "POST":
        email, role = request.form.get("email", ""), request.form.get("role", "editor")
        try:
            editor = accounts.invite_editor(email, role)
        except (accounts.EditorError, InvalidAddress) as error:
            audit_action("editor_invite", outcome="failed", detail=str(error))
            flash(str(error), "error")
        else:
            audit_action("editor_invite", target=editor.email, detail=editor.role.value)
            flash(f"Invitation sent to {editor.email}.", "ok")
        return redirect(url_for("admin.editors_page"))
    return render_template("admin/editors.html", editors=accounts.list_editors(),
                           roles=[role.value for role in Role])


@bp.post("/editors/<int:editor_id>/role")
@allow(Role.OWNER)
def change_editor_role(editor_id: int):
    try:
        editor = accounts.change_role(editor_id, request.form.get("role", ""))
    except accounts.EditorError as error:
        audit_action("role_change", outcome="failed", target=editor_id, detail=str(error))
        flash(str(error), "error")
    else:
        audit_action("role_change", target=editor.email, detail=editor.role.value)
        flash(f"{editor.email} is now {editor.role.value}.", "ok")
    return redirect(url_for("admin.editors_page"))


@bp.post("/editors/<int:editor_id>/remove")
@allow(Role.OWNER)
def remove_editor(editor_id: int):
    try:
        editor = accounts.remove_editor(editor_id)
    except accounts.EditorError as error:
        audit_action("editor_remove", outcome="failed", target=editor_id, detail=str(error))
        flash(str(error), "error")
    else:
        audit_action("editor_remove", target=editor.email)
        flash(f"{editor.email} was removed; their sessions and tokens ended.", "ok")
    return redirect(url_for("admin.editors_page"))
