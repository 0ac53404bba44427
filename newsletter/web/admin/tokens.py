"""API tokens (owners): create one for an editor with its scopes, revoke one."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from newsletter.editors import accounts
from newsletter.models import Role, utcnow
from newsletter.web.admin.access import allow, audit_action, bp


@bp.route("/tokens", methods=["GET", "POST"])
@allow(Role.OWNER)
def tokens_page():
    new_token = None
    if request.method == "POST":
        form = request.form
        days = form.get("expires_days", "").strip()
        holder = form.get("editor") or current_user.email
        try:
            if days and not days.isdigit():
                raise accounts.EditorError("Give the expiry as a number of days.")
            new_token, row = accounts.create_api_token(
                holder, form.get("name", ""), form.getlist("scope"),
                int(days) if days else None)
        except accounts.EditorError as error:
            audit_action("token_create", outcome="failed", target=holder, detail=str(error))
            flash(str(error), "error")
        else:
            audit_action("token_create", target=f"token {row.id} of {holder}", detail=row.scopes)
    return render_template("admin/tokens.html", new_token=new_token,
                           tokens=accounts.list_tokens(), scopes=list(accounts.SCOPES),
                           editors=[e for e in accounts.list_editors() if e.is_active],
                           now=utcnow())


@bp.post("/tokens/<int:token_id>/revoke")
@allow(Role.OWNER)
def revoke_token(token_id: int):
    if accounts.revoke_token(token_id):
        audit_action("token_revoke", target=f"token {token_id}")
        flash("Token revoked: it no longer works.", "ok")
    else:
        flash("No such live token.", "error")
    return redirect(url_for("admin.tokens_page"))
