"""Sequences in the editor workspace: create one, add, edit, reorder, preview and
test-send its steps; each step's sent, failed and waiting; its readers and where each
is. Every change is audited."""

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

from newsletter.extensions import db
from newsletter.mail.transport import Outcome
from newsletter.models import Role, Sequence, SequenceStep
from newsletter.sequences import reports, steps
from newsletter.sequences.durations import format_duration
from newsletter.sequences.quiet_hours import format_window
from newsletter.sequences.steps import SequenceError
from newsletter.web.admin.access import allow, audit_action, bp
from newsletter.web.security import mail_document

PREFIX = "/sequences"


def _other_languages() -> tuple[str, ...]:
    return current_app.config["LANGUAGES"][1:]


def _form() -> dict[str, str]:
    form = request.form
    keys = ("name", "topic", "after", "subject", "body", "window") + tuple(
        f"{kind}_{code}" for code in _other_languages() for kind in ("subject", "body"))
    return {key: form.get(key, "") for key in keys}


def _translations(form: dict[str, str]) -> dict:
    return {code: {"subject": form[f"subject_{code}"], "body": form[f"body_{code}"]}
            for code in _other_languages()}


def _step_form(step: SequenceStep) -> dict[str, str]:
    form = {"after": format_duration(step.delay_seconds), "subject": step.subject,
            "body": step.body_markdown}
    for code in _other_languages():
        words = (step.translations or {}).get(code) or {}
        form[f"subject_{code}"] = words.get("subject", "")
        form[f"body_{code}"] = words.get("body_markdown", "")
    return form


def _sequence_page(sequence: Sequence, form=None, editing: SequenceStep | None = None,
                   status: int = 200):
    return render_template(
        "admin/sequence.html", sequence=sequence, steps=reports.step_reports(sequence.id),
        readers=reports.readers(sequence), form=form or {}, editing=editing,
        format_duration=format_duration,
        window=format_window(sequence.window_start, sequence.window_end)), status


@bp.get(PREFIX + "/")
@allow(Role.EDITOR)
def sequences_page():
    return render_template("admin/sequences.html", summaries=reports.summaries(), form={})


@bp.post(PREFIX + "/")
@allow(Role.EDITOR)
def sequence_create():
    form = _form()
    try:
        sequence = steps.create_sequence(form["name"], form["topic"].strip() or None)
    except SequenceError as error:
        db.session.rollback()
        flash(str(error), "error")
        return render_template("admin/sequences.html", summaries=reports.summaries(),
                               form=form), 400
    audit_action("sequence_create", target=f"sequence {sequence.name}")
    flash(f"Sequence {sequence.name!r} created: readers who enter from now on join it.", "ok")
    return redirect(url_for("admin.sequence_page", sequence_id=sequence.id))


@bp.get(PREFIX + "/<int:sequence_id>")
@allow(Role.EDITOR)
def sequence_page(sequence_id: int):
    return _sequence_page(db.session.get(Sequence, sequence_id) or abort(404))


@bp.post(PREFIX + "/<int:sequence_id>/steps")
@allow(Role.EDITOR)
def sequence_add_step(sequence_id: int):
    sequence = db.session.get(Sequence, sequence_id) or abort(404)
    form = _form()
    try:
        step = steps.add_step(sequence.name, form["after"], form["subject"], form["body"],
                              _translations(form))
    except SequenceError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _sequence_page(db.session.get(Sequence, sequence_id), form, status=400)
    audit_action("sequence_step_add", target=f"sequence {sequence.name} step {step.position}")
    flash(f"Step {step.position} added.", "ok")
    return redirect(url_for("admin.sequence_page", sequence_id=sequence_id))


def _language() -> str | None:
    code = request.values.get("lang")
    return code if code in current_app.config["LANGUAGES"] else None


def _step(step_id: int) -> SequenceStep:
    return db.session.get(SequenceStep, step_id) or abort(404)


@bp.route(PREFIX + "/steps/<int:step_id>", methods=["GET", "POST"])
@allow(Role.EDITOR)
def sequence_step_edit(step_id: int):
    step = _step(step_id)
    sequence = db.session.get(Sequence, step.sequence_id)
    if request.method == "GET":
        return _sequence_page(sequence, _step_form(step), editing=step)
    form = _form()
    try:
        steps.edit_step(step_id, form["after"], form["subject"], form["body"],
                        _translations(form))
    except SequenceError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _sequence_page(db.session.get(Sequence, sequence.id), form,
                              editing=_step(step_id), status=400)
    audit_action("sequence_step_edit", target=f"sequence {sequence.name} step {step_id}")
    flash("Step saved: readers who had it do not get it again.", "ok")
    return redirect(url_for("admin.sequence_page", sequence_id=sequence.id))


@bp.post(PREFIX + "/<int:sequence_id>/window")
@allow(Role.EDITOR)
def sequence_window(sequence_id: int):
    """Quiet hours: the hours of the day steps may go out (empty: any hour)."""
    sequence = db.session.get(Sequence, sequence_id) or abort(404)
    window = request.form.get("window", "")
    try:
        steps.set_window(sequence.name, window)
    except SequenceError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _sequence_page(db.session.get(Sequence, sequence_id), {"window": window},
                              status=400)
    shown = format_window(sequence.window_start, sequence.window_end)
    audit_action("sequence_window", target=f"sequence {sequence.name}",
                 detail=shown or "any hour")
    flash(f"Steps go out {'from ' + shown.replace('-', ' to ') if shown else 'at any hour'}.",
          "ok")
    return redirect(url_for("admin.sequence_page", sequence_id=sequence_id))


@bp.post(PREFIX + "/steps/<int:step_id>/<any(up, down):direction>")
@allow(Role.EDITOR)
def sequence_step_move(step_id: int, direction: str):
    step = _step(step_id)
    steps.move_step(step_id, -1 if direction == "up" else 1)
    audit_action("sequence_step_move", target=f"step {step_id}", detail=direction)
    return redirect(url_for("admin.sequence_page", sequence_id=step.sequence_id))


@bp.get(PREFIX + "/steps/<int:step_id>/preview")
@allow(Role.EDITOR)
def sequence_step_preview(step_id: int):
    """The step page's sandboxed iframe, or with ``part=text`` the text part; in
    ``lang`` (else the default language)."""
    preview = steps.preview(_step(step_id), _language())
    if request.args.get("part") == "text":
        return Response(f"Subject: {preview.subject}\n\n{preview.text}", mimetype="text/plain")
    return mail_document(preview.html, framed_by_self=True)


@bp.post(PREFIX + "/steps/<int:step_id>/test")
@allow(Role.EDITOR)
def sequence_step_test(step_id: int):
    step = _step(step_id)
    result = steps.send_test(step, current_user.email, _language())
    audit_action("send_test", outcome="ok" if result.outcome is Outcome.SENT else "failed",
                 target=f"sequence step {step_id}")
    if result.outcome is Outcome.SENT:
        flash(f"Test sent to {current_user.email}.", "ok")
    else:
        flash(f"The test was not sent: {result.detail}", "error")
    return redirect(url_for("admin.sequence_page", sequence_id=step.sequence_id))
