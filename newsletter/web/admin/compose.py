"""Composing the next issue: the digests page with its preview, the test mail, and
sending it now or scheduling it (each after a confirmation page)."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.issues import digests, reports
from newsletter.issues.schedule import LocalTimeError, local_time, local_to_utc
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.models import Role, Segment
from newsletter.readers import segments
from newsletter.web.admin.access import allow, audit_action, bp, record_action
from newsletter.web.common import newsletter_zone
from newsletter.web.security import mail_document

COMPOSE_FIELDS = ("subject", "headline", "intro", "send_date", "send_time", "as_topics",
                  "segment", "segment_only")


def compose_form(values) -> dict[str, str]:
    """The compose form as typed: every action reads these same fields (with a subject
    and intro per language beyond the default)."""
    return {name: values.get(name, "") for name in COMPOSE_FIELDS + language_fields()}


def language_fields() -> tuple[str, ...]:
    return tuple(f"{kind}_{code}" for code in current_app.config["LANGUAGES"][1:]
                 for kind in ("subject", "intro"))


def translations_of(form: dict[str, str]) -> dict:
    return {code: {"subject": form[f"subject_{code}"], "intro": form[f"intro_{code}"]}
            for code in current_app.config["LANGUAGES"][1:]}


def chosen_segment(form: dict[str, str]) -> Segment | None:
    """The segment the form names (empty: every reader); SegmentError when unknown."""
    return segments.find(form["segment"]) if form["segment"].strip() else None


def _slugs(text: str) -> list[str]:
    """Topic slugs typed comma-separated ("as a reader of topics X, Y")."""
    return [slug.strip() for slug in text.split(",") if slug.strip()]


def _preview(form: dict[str, str]):
    """The next issue as the form says, as a reader of its topics if it names any,
    and a note when that could not be honoured: whatever is typed (a half-typed slug, a
    topic with nothing new) the whole issue is shown and the note names why."""
    subject, intro, headline = form["subject"] or None, form["intro"], form["headline"]
    slugs = _slugs(form["as_topics"])
    unknown = topics.unknown_slugs(slugs)
    known = [slug for slug in slugs if slug not in unknown]
    notes = [f"unknown topic {slug[:64]!r}" for slug in unknown[:5]]
    try:
        preview = digests.preview(subject, intro, headline, known)
    except topics.TopicError as error:
        notes.append(str(error))
        known, preview = [], digests.preview(subject, intro, headline)
    if not notes:
        return preview, None
    shown = f"as a reader of {', '.join(known)}" if known else "as the whole issue"
    return preview, f"Previewed {shown}: " + "; ".join(notes)


def _with_note(html: str, note: str | None) -> str:
    """The preview's HTML with the note on top, inside the body."""
    if not note:
        return html
    banner = Markup('<p role="note" style="margin:0;padding:8px 12px;background:#fffaeb;'
                    'color:#7a2e0e;font:14px/1.4 sans-serif;border-bottom:1px solid #fedf89">'
                    '{}</p>').format(note)
    match = re.search(r"<body[^>]*>", html, re.IGNORECASE)
    at = match.end() if match else 0
    return html[:at] + str(banner) + html[at:]


def _compose_page(form: dict[str, str], status: int = 200):
    text = {name: form[name] for name in ("subject", "headline", "intro")}
    preview, note = _preview(form)
    if note:
        flash(note, "error")
    back = url_for("admin.digests_page", **{k: v for k, v in text.items() if v})
    return render_template("admin/digests.html", form=form, back=back,
                           preview=preview, segments=segments.all_segments(),
                           upcoming=digests.new_articles(), zone=newsletter_zone().key,
                           default_headline=digests.default_headline(),
                           issues=reports.recent_issues(20), drafts=digests.drafts()), status


@bp.route("/digests", methods=["GET", "POST"])
@allow(Role.EDITOR)
def digests_page():
    """GET: a fresh form (or one a link filled in); POST: "Update preview" or "Back to
    edit" from a confirmation, the form as typed. Neither changes anything."""
    return _compose_page(compose_form(request.form if request.method == "POST"
                                      else request.args))


@bp.route("/digests/preview", methods=["GET", "POST"])
@allow(Role.EDITOR)
def digest_preview():
    """The compose page's sandboxed iframe (the mail's HTML under the mail policy), or
    with ``part=text`` the text part the page shows beside it. The page's script POSTs
    the compose form itself: a long intro does not fit in a URL."""
    form = compose_form(request.form if request.method == "POST" else request.args)
    preview, note = _preview(form)
    text_part = request.args.get("part") == "text"
    if preview is None:
        nothing = "Nothing new since the last issue: there is nothing to preview."
        if text_part:
            return Response(nothing, mimetype="text/plain")
        return mail_document(str(Markup("<!doctype html><title>Preview</title><p>{}</p>")
                                 .format(nothing)), framed_by_self=True)
    if text_part:
        head = f"[{note}]\n\n" if note else ""
        return Response(f"{head}Subject: {preview.subject}\n\n{preview.text}",
                        mimetype="text/plain")
    return mail_document(_with_note(preview.html, note), framed_by_self=True)


def parse_send_at(form: dict[str, str]) -> datetime:
    """The typed date and time in the newsletter's zone, as a UTC instant in the
    future; LocalTimeError or ScheduleError (both ValueError) say what is wrong."""
    if not (form["send_date"].strip() and form["send_time"].strip()):
        raise LocalTimeError("Enter the date and time to send it.")
    send_at = local_to_utc(form["send_date"], form["send_time"], newsletter_zone())
    digests.check_send_at(send_at)
    return send_at


def confirmed_readers() -> int | None:
    """The reader count the editor said yes to, None before the confirmation step."""
    count = request.form.get("confirmed", "")
    return int(count) if count.isascii() and count.isdigit() and len(count) < 10 else None


def send_confirmation(subject: str, articles: int, action_url: str, *,
                      form: dict[str, str] | None = None, back_url: str | None = None,
                      send_at: datetime | None = None, status: int = 200,
                      segment: Segment | None = None):
    """The one confirmation every "send now" and "schedule" goes through: "Send
    'SUBJECT' to N readers?" (of the segment, when it goes to one), with the count the
    send is then held to (a send that would reach another number starts nothing and
    asks again)."""
    return render_template("admin/digest_confirm.html", form=form or {},
                           action_url=action_url, back_url=back_url, subject=subject,
                           readers=digests.active_subscriber_count(segment),
                           articles=articles, send_at=send_at, segment=segment), status


def _confirm_page(form: dict[str, str], action: str, send_at: datetime | None = None,
                  status: int = 200):
    upcoming = digests.new_articles()
    if not upcoming:
        flash("Nothing new since the last issue: nothing was sent.", "error")
        return redirect(url_for("admin.digests_page"))
    try:
        segment = chosen_segment(form)
        if segment is not None and segments.segment_count(segment) == 0:
            raise segments.SegmentError(f"The segment {segment.name!r} has no active reader: "
                                        "nothing to send.")
    except segments.SegmentError as error:
        flash(str(error), "error")
        return _compose_page(form, 400)
    return send_confirmation(form["subject"] or digests.default_subject(upcoming),
                             len(upcoming), url_for(action), form=form, send_at=send_at,
                             status=status, segment=segment)


@bp.post("/digests/send")
@allow(Role.EDITOR)
def send_digest():
    form = compose_form(request.form)
    readers = confirmed_readers()
    if readers is None:
        return _confirm_page(form, "admin.send_digest")
    try:
        with unit_of_work():  # RecipientsChanged rolls back everything: nothing started
            segment = chosen_segment(form)
            digest = digests.send_now(subject=form["subject"] or None, intro=form["intro"],
                                      headline=form["headline"], expected_recipients=readers,
                                      segment=segment, segment_only=bool(form["segment_only"]),
                                      translations=translations_of(form))
            if digest is not None:
                record_action("send", target=f"digest {digest.id}",
                              detail=f"{digest.recipients} recipient(s)" + (
                                  f" of segment {segment.name}" if segment else ""))
    except segments.SegmentError as error:
        flash(str(error), "error")
        return _compose_page(form, 400)
    except digests.RecipientsChanged:
        flash("The number of confirmed readers changed since you looked: check it again.",
              "error")
        return _confirm_page(form, "admin.send_digest", status=409)
    if digest is None:
        flash("Nothing new since the last issue: nothing was sent.", "error")
        return redirect(url_for("admin.digests_page"))
    return redirect(url_for("admin.digest_report", digest_id=digest.id))


@bp.post("/digests/schedule")
@allow(Role.EDITOR)
def schedule_digest():
    form = compose_form(request.form)
    try:
        send_at = parse_send_at(form)
    except ValueError as error:
        flash(str(error), "error")
        return _compose_page(form, 400)
    if confirmed_readers() is None:
        return _confirm_page(form, "admin.schedule_digest", send_at)
    try:
        with unit_of_work():
            digest = digests.schedule(send_at, form["subject"] or None, form["intro"],
                                      form["headline"], segment=chosen_segment(form),
                                      segment_only=bool(form["segment_only"]),
                                      translations=translations_of(form))
            if digest is not None:
                record_action("schedule", target=f"digest {digest.id}",
                              detail=digest.send_at.isoformat())
    except segments.SegmentError as error:
        flash(str(error), "error")
        return _compose_page(form, 400)
    if digest is None:
        flash("Nothing new since the last issue: nothing was scheduled.", "error")
        return redirect(url_for("admin.digests_page"))
    flash(f"Scheduled for {local_time(digest.send_at, newsletter_zone())}.", "ok")
    return redirect(url_for("admin.digest_report", digest_id=digest.id))


@bp.post("/digests/test")
@allow(Role.EDITOR)
def send_test_digest():
    form = compose_form(request.form)
    try:
        result = digests.send_test(current_user.email, form["subject"] or None, form["intro"],
                                   form["headline"], _slugs(form["as_topics"]))
    except topics.TopicError as error:
        result = DeliveryResult(Outcome.FAILED, str(error))
    audit_action("send_test", outcome="ok" if result.outcome is Outcome.SENT else "failed",
                 detail=f"as a reader of {form['as_topics'][:200]}" if form["as_topics"] else None)
    if result.outcome is Outcome.SENT:
        flash(f"Test sent to {current_user.email}.", "ok")
    else:
        flash(f"The test was not sent: {result.detail}", "error")
    return _compose_page(form)  # the form comes back as typed
