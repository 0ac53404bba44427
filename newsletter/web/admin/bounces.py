"""Bounces and complaints in the editor workspace: the not-understood box, rates,
reactivating a reader, resuming a send the deliverability guard paused."""

from __future__ import annotations

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from newsletter.bounces import intake, stats
from newsletter.db import unit_of_work
from newsletter.delivery import guard
from newsletter.extensions import db
from newsletter.models import BounceEvent, Digest, Role
from newsletter.web.admin.access import allow, audit_action, bp, record_action

PREFIX = "/bounces"  # under the workspace's /admin


@bp.app_template_global()
def bounce_events_for(subscriber_id: int) -> list[BounceEvent]:
    return intake.events_for(subscriber_id)


@bp.app_template_global()
def guard_paused_issues() -> list[Digest]:
    return guard.guard_paused_issues()


@bp.app_template_global()
def issue_bounce_report(digest_id: int) -> dict:
    return {"rates": stats.issue_rates(digest_id),
            "domains": stats.issue_domains(digest_id),
            "guard_paused": guard.paused_by_guard(db.session.get(Digest, digest_id))}


@bp.app_template_global()
def deliverability_chart() -> dict:
    rows = stats.rates_by_day(30)
    return {"days": rows, "totals": stats.totals(rows),
            "hard_limit": current_app.config["GUARD_MAX_HARD_BOUNCE_PERCENT"],
            "complaint_limit": current_app.config["GUARD_MAX_COMPLAINT_PERCENT"]}


@bp.get(PREFIX + "/")
@allow(Role.OWNER)
def bounces_page():
    return render_template("admin/bounces.html", parked=intake.not_understood())


@bp.get(PREFIX + "/raw/<int:message_id>")
@allow(Role.OWNER)
def bounce_raw_message(message_id: int):
    stored = intake.raw_message(message_id) or abort(404)
    if stored.raw is None:
        abort(404)
    # A raw report may quote a reader's address and mail: reading it is recorded.
    audit_action("bounce_raw_download", target=f"bounce report {message_id}")
    # Shown as text, never rendered: it is whatever a stranger mailed us.
    return Response(stored.raw, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="report-{message_id}.eml"',
        "X-Content-Type-Options": "nosniff"})


@bp.post(PREFIX + "/subscribers/<int:subscriber_id>/reactivate")
@allow(Role.OWNER)
def bounce_reactivate(subscriber_id: int):
    with unit_of_work():
        reactivated = intake.reactivate(subscriber_id, current_user)
        record_action("reactivate", target=f"subscriber {subscriber_id}",
                      outcome="ok" if reactivated else "failed")
    if reactivated:
        flash("The reader is active again; their soft-bounce score starts from zero.", "ok")
    else:
        flash("Only a bounced reader can be reactivated.", "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.post(PREFIX + "/digests/<int:digest_id>/resume")
@allow(Role.OWNER)
def bounce_resume(digest_id: int):
    """Only an owner may overrule the guard: a send that bounces or draws complaints
    can get the whole domain blocked by the mailbox providers."""
    confirmed = request.form.get("confirm") == "yes"
    if not confirmed:
        audit_action("guard_resume", outcome="failed", target=f"digest {digest_id}",
                     detail="not confirmed")
        flash("Tick the box to confirm you checked the bounces before resuming.", "error")
        return redirect(url_for("admin.digest_report", digest_id=digest_id))
    with unit_of_work():
        resumed = guard.resume_confirmed(digest_id, confirmed)
        record_action("guard_resume", target=f"digest {digest_id}",
                      outcome="ok" if resumed else "failed")
    if resumed:
        flash("Issue resumed. The guard now judges only the messages sent from here on.", "ok")
    else:
        flash("This issue cannot be resumed in its current state.", "error")
    return redirect(url_for("admin.digest_report", digest_id=digest_id))
