"""One issue after it was made: its report page, editing it while scheduled, its
progress while sending, and pausing, resuming, cancelling, starting (after the same
confirmation as any "send now") or discarding it."""

from __future__ import annotations

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for

from newsletter.analytics import reports as click_reports
from newsletter.db import unit_of_work
from newsletter.delivery import guard
from newsletter.extensions import db
from newsletter.issues import digests, lifecycle, reports, waves
from newsletter.issues.schedule import local_time
from newsletter.models import Digest, DigestKind, Role
from newsletter.web.admin.access import allow, audit_action, bp, record_action
from newsletter.web.admin.compose import (
    compose_form,
    confirmed_readers,
    parse_send_at,
    send_confirmation,
)
from newsletter.web.common import newsletter_zone


@bp.app_template_global()
def issue_waves(digest_id: int) -> list:
    """For the issue report: its rows by wave (reader time), counted by status."""
    return waves.waves_of(digest_id)


@bp.get("/digests/<int:digest_id>")
@allow(Role.EDITOR)
def digest_report(digest_id: int):
    digest = db.session.get(Digest, digest_id) or abort(404)
    return _report_page(digest, _scheduled_form(digest))


def _scheduled_form(digest: Digest) -> dict[str, str]:
    local = digest.send_at.astimezone(newsletter_zone()) if digest.send_at else None
    return {"subject": digest.subject, "headline": digest.headline or "",
            "intro": digest.intro, "send_date": f"{local:%Y-%m-%d}" if local else "",
            "send_time": f"{local:%H:%M}" if local else ""}


def _report_page(digest: Digest, form: dict[str, str], status: int = 200):
    return render_template("admin/digest.html", digest=digest, form=form,
                           zone=newsletter_zone().key,
                           default_headline=digests.default_headline(digest.send_at),
                           progress=digests.progress(digest.id),
                           bounced=reports.bounced_in(digest.id),
                           clicks=click_reports.issue_report(digest),
                           relays=reports.by_relay(digest.id),
                           not_reached=reports.not_reached(digest.id)), status


@bp.get("/digests/<int:digest_id>/clicks.csv")
@allow(Role.EDITOR)
def digest_clicks_csv(digest_id: int):
    """The issue's click report as CSV: totals, per link, per topic set, per hour."""
    digest = db.session.get(Digest, digest_id) or abort(404)
    filename = f"issue-{digest_id}-clicks.csv"
    return Response(click_reports.as_csv(click_reports.issue_report(digest)),
                    mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.post("/digests/<int:digest_id>/edit")
@allow(Role.EDITOR)
def edit_digest(digest_id: int):
    """Change a scheduled issue's subject, headline, intro or time before it goes out."""
    digest = db.session.get(Digest, digest_id) or abort(404)
    form = compose_form(request.form)
    try:
        with unit_of_work():
            changed = digests.update_scheduled(digest_id, parse_send_at(form), form["subject"],
                                               form["intro"], form["headline"])
            record_action("schedule_edit", target=f"digest {digest_id}",
                          outcome="ok" if changed else "failed")
    except ValueError as error:
        flash(str(error), "error")
        return _report_page(digest, form, 400)
    if changed:
        flash(f"Saved: it goes out {local_time(digest.send_at, newsletter_zone())}.", "ok")
    else:
        flash("This issue is no longer scheduled (it started or was cancelled): "
              "nothing was changed.", "error")
    return redirect(url_for("admin.digest_report", digest_id=digest_id))


@bp.get("/digests/<int:digest_id>/progress")
@allow(Role.EDITOR)
def digest_progress(digest_id: int):
    digest = db.session.get(Digest, digest_id) or abort(404)
    return jsonify(status=digest.status.value, **digests.progress(digest_id))


_CONTROLS = {  # action: (service, what the editor is told)
    "pause": (digests.pause, "Issue paused."),
    "resume": (digests.resume, "Issue resumed."),
    "cancel": (digests.cancel, "Issue cancelled; its articles are free for a new issue."),
    "discard": (digests.discard, "Draft discarded; its articles go into the next issue."),
}


@bp.post("/digests/<int:digest_id>/<any(pause, resume, cancel, discard):action>")
@allow(Role.EDITOR)
def control_digest(digest_id: int, action: str):
    digest = db.session.get(Digest, digest_id) or abort(404)
    if digest.kind == DigestKind.SEQUENCE_STEP and action != "resume":
        # A step's sending never ends: pausing or cancelling it here would strand its
        # readers mid-sequence. Only a guard or relay pause is lifted (resume).
        flash("This is a sequence step's sending: it cannot be paused, cancelled or "
              "discarded from here. Edit or reorder the step on its sequence's page.",
              "error")
        audit_action(action, target=f"digest {digest_id}", outcome="failed",
                     detail="a sequence step")
        return _report_page(digest, _scheduled_form(digest), 409)
    if action == "resume" and guard.paused_by_guard(db.session.get(Digest, digest_id)):
        flash("The deliverability guard paused this send: confirm below to resume it.", "error")
        return redirect(url_for("admin.digest_report", digest_id=digest_id))
    service, done = _CONTROLS[action]
    with unit_of_work():
        changed = service(digest_id)
        record_action(action, target=f"digest {digest_id}", outcome="ok" if changed else "failed")
    if changed:
        flash(done, "ok")
    else:
        past = "cancelled" if action == "cancel" else action.rstrip("e") + "ed"
        flash(f"This issue cannot be {past} in its current state.", "error")
    return redirect(url_for("admin.digest_report", digest_id=digest_id))


@bp.post("/digests/<int:digest_id>/start")
@allow(Role.EDITOR)
def start_digest(digest_id: int):
    """Send a draft or a scheduled issue now: first the confirmation every "send now"
    shows, then the send, held to the count the editor confirmed."""
    digest = db.session.get(Digest, digest_id) or abort(404)
    report = url_for("admin.digest_report", digest_id=digest_id)

    def confirmation(status: int = 200):
        return send_confirmation(digest.subject, len(digest.articles),
                                 url_for("admin.start_digest", digest_id=digest_id),
                                 back_url=report, status=status, segment=digest.segment)

    readers = confirmed_readers()
    if readers is None and digest.status in lifecycle.NOT_STARTED:
        return confirmation()
    try:
        with unit_of_work():  # RecipientsChanged rolls back everything: nothing started
            started = readers is not None and digests.start_draft(
                digest_id, expected_recipients=readers) is not None
            record_action("start", target=f"digest {digest_id}",
                          outcome="ok" if started else "failed")
    except digests.RecipientsChanged:
        flash("The number of confirmed readers changed since you looked: check it again.",
              "error")
        return confirmation(409)
    if started:
        flash("Sending started.", "ok")
    else:
        flash("This issue cannot be started in its current state.", "error")
    return redirect(report)
