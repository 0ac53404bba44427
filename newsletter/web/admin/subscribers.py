"""Subscribers: search, one reader's page (edit, unsubscribe, resend the confirmation),
adding one by hand, importing a CSV file, and the owners' export and erasure."""

from __future__ import annotations

import csv
import io

from flask import (
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import reports
from newsletter.mail.addresses import InvalidAddress
from newsletter.models import ConsentSource, ReaderSunset, Role, Subscriber, SubscriberStatus
from newsletter.readers import preferences, privacy, subscriber_lists, subscriptions, sunset
from newsletter.web.admin.access import allow, audit_action, bp, record_action
from newsletter.web.common import request_origin
from newsletter.web.security import MAX_ID


@bp.get("/subscribers")
@allow(Role.EDITOR)
def subscribers_page():
    query, status = request.args.get("q", "")[:254], request.args.get("status", "")
    page = request.args.get("page", "1")
    # ASCII digits only ("²".isdigit() is true), and an offset the database can take.
    page_number = int(page) if page.isascii() and page.isdigit() and len(page) < 7 else 1
    page_number = max(1, min(page_number, MAX_ID // reports.PAGE_SIZE))
    return render_template("admin/subscribers.html", query=query, status=status,
                           page=page_number, statuses=[s.value for s in SubscriberStatus],
                           subscribers=reports.search_subscribers(query, status, page_number),
                           page_size=reports.PAGE_SIZE)


@bp.route("/subscribers/import", methods=["GET", "POST"])
@allow(Role.EDITOR)
def import_subscribers():
    """Two steps, each a job run by a worker: check the file and see the report, then
    confirm to write. The request only stores the file and returns at once."""
    consent = request.form.get("consent", "").strip()[:1000] or None
    if request.method == "GET":
        return render_template("admin/import.html", job=None, consent="",
                               topic_slugs=_topic_slugs())
    upload = request.form.get("upload")
    if upload:  # step two: the file checked in step one
        if not subscriber_lists.has_upload(upload):
            flash("That upload expired; choose the file again.", "error")
            return redirect(url_for("admin.import_subscribers"))
        dry_run = request.form.get("action") != "import"
    else:
        file = request.files.get("file")
        head = file.stream.read(subscriber_lists.SNIFF_BYTES) if file else b""
        try:
            if not head:
                raise subscriber_lists.ListFileError("Choose a CSV file to import.")
            subscriber_lists.check_header(head)
        except subscriber_lists.ListFileError as error:
            flash(str(error), "error")
            return render_template("admin/import.html", job=None, consent=consent or "",
                                   topic_slugs=_topic_slugs()), 400
        file.stream.seek(0)
        upload, dry_run = subscriber_lists.keep_upload(file.stream), True
    with unit_of_work():  # the job's task is published once it is committed
        job = subscriber_lists.start_import_job(upload, consent, dry_run, current_user.id)
        record_action("import_check" if dry_run else "import", target=f"import job {job.id}",
                      detail=f"consent: {consent}" if consent else "with confirmation mails")
    return redirect(url_for("admin.import_job", job_id=job.id))


@bp.get("/subscribers/import/<int:job_id>")
@allow(Role.EDITOR)
def import_job(job_id: int):
    job = subscriber_lists.import_job(job_id) or abort(404)
    return render_template("admin/import.html", job=job, consent=job.consent or "",
                           sample_lines=subscriber_lists.sample_lines)


def _topic_slugs() -> list[str]:
    return [topic.slug for topic in topics.list_topics()]


MAX_NOTE = 1000  # a consent statement or an editor's note, as in the import


def _note(name: str) -> str | None:
    return request.form.get(name, "").strip()[:MAX_NOTE] or None


@bp.route("/subscribers/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def add_subscriber():
    """One reader by hand, under the import's rules (consent, suppression, limits)."""
    if request.method == "GET":
        return _new_reader_page({}, [])
    chosen_slugs = request.form.getlist("topics")
    try:
        chosen = topics.topics_by_slugs(chosen_slugs)  # none ticked: every topic
        with unit_of_work():  # the mailbox's lock is held until this commits
            subscriber, owed = subscriptions.add_by_hand(
                request.form.get("email", ""), request.form.get("name", ""), _note("consent"),
                request_origin(ConsentSource.EDITOR))
            if chosen:
                topics.set_reader_topics(subscriber, chosen)
            record_action("subscriber_add", target=f"subscriber {subscriber.id}",
                          detail="as confirmed" if subscriber.confirmed_at else "pending")
    except (InvalidAddress, subscriptions.SubscriberError, topics.TopicError) as error:
        audit_action("subscriber_add", outcome="failed", detail=str(error))
        flash(str(error), "error")
        return _new_reader_page(request.form, chosen_slugs), 400
    if subscriber.confirmed_at:
        flash("Reader added as confirmed.", "ok")
    elif owed:
        flash("Reader added; a confirmation mail is on its way.", "ok")
    else:
        flash("Reader added, but no confirmation was sent: this mailbox reached its limit "
              "of confirmation mails for now. Resend it later from this page.", "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber.id))


def _new_reader_page(form, ticked: list[str]) -> str:
    return render_template("admin/subscriber_new.html", form=form, ticked=set(ticked),
                           all_topics=topics.list_topics())


@bp.post("/subscribers/<int:subscriber_id>/edit")
@allow(Role.EDITOR)
def edit_subscriber(subscriber_id: int):
    subscriber = db.session.get(Subscriber, subscriber_id) or abort(404)
    try:
        with unit_of_work():
            changed = subscriptions.edit_by_hand(
                subscriber_id, request.form.get("email", ""), request.form.get("name", ""),
                _note("note"), request_origin(ConsentSource.EDITOR))
            if changed:
                record_action("subscriber_edit", target=f"subscriber {subscriber_id}")
    except (InvalidAddress, subscriptions.SubscriberError) as error:
        audit_action("subscriber_edit", outcome="failed", target=f"subscriber {subscriber_id}",
                     detail=str(error))
        flash(str(error), "error")
        return _subscriber_view(subscriber, form=request.form), 400
    flash("Reader updated." if changed else "Nothing changed.", "ok")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@allow(Role.EDITOR)
def unsubscribe_subscriber(subscriber_id: int):
    try:
        with unit_of_work():
            subscriptions.unsubscribe_subscriber(
                subscriber_id, request_origin(ConsentSource.EDITOR),
                _note("note") or "by an editor")
            record_action("subscriber_unsubscribe", target=f"subscriber {subscriber_id}")
    except subscriptions.TokenInvalid:
        abort(404)
    flash("Reader unsubscribed: no more mail goes to this address.", "ok")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/resend")
@allow(Role.EDITOR)
def resend_confirmation(subscriber_id: int):
    db.session.get(Subscriber, subscriber_id) or abort(404)
    try:
        with unit_of_work():
            sent = subscriptions.resend_confirmation(subscriber_id,
                                                     request_origin(ConsentSource.EDITOR))
            record_action("confirmation_resend", target=f"subscriber {subscriber_id}",
                          outcome="ok" if sent else "failed")
    except subscriptions.SubscriberError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))
    if sent:
        flash("A new confirmation mail is on its way.", "ok")
    else:
        flash("Not sent: this mailbox has had as many confirmation mails as the limits "
              "allow for now (CONFIRM_MAILS_PER_DAY, CONFIRM_MAIL_INTERVAL). Try later.",
              "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.get("/subscribers/export.csv")
@allow(Role.OWNER)
def export_subscribers():
    audit_action("export", target="subscribers.csv")
    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in subscriber_lists.export_rows():
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return Response(stream_with_context(lines()), mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="subscribers.csv"'})


@bp.get("/subscribers/<int:subscriber_id>/export.json")
@allow(Role.OWNER)
def export_subscriber(subscriber_id: int):
    data = privacy.export_subscriber(subscriber_id)
    if data is None:
        abort(404)
    audit_action("export", target=f"subscriber {subscriber_id}")
    response = jsonify(data)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="subscriber-{subscriber_id}.json"')
    return response


@bp.post("/subscribers/<int:subscriber_id>/erase")
@allow(Role.OWNER)
def erase_subscriber(subscriber_id: int):
    if request.form.get("confirm") != "yes":
        audit_action("erase", outcome="failed", target=f"subscriber {subscriber_id}",
                     detail="not confirmed")
        flash("Tick the box to confirm the erasure.", "error")
    elif _erase(subscriber_id):
        flash("Personal data erased; the address stays suppressed.", "ok")
    else:
        flash("Nothing to erase.", "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


def _erase(subscriber_id: int) -> bool:
    with unit_of_work():
        erased = privacy.erase_subscriber(subscriber_id)
        record_action("erase", target=f"subscriber {subscriber_id}",
                      outcome="ok" if erased else "failed")
        return erased


@bp.get("/subscribers/<int:subscriber_id>")
@allow(Role.EDITOR)
def subscriber_page(subscriber_id: int):
    subscriber = db.session.get(Subscriber, subscriber_id) or abort(404)
    audit_action("subscriber_view", target=f"subscriber {subscriber_id}")
    return _subscriber_view(subscriber)


def _subscriber_view(subscriber: Subscriber, form=None) -> str:
    return render_template("admin/subscriber.html", subscriber=subscriber,
                           erased=subscriber.email_normalized.startswith(privacy.ERASED_PREFIX),
                           form=form or {"email": subscriber.email,
                                         "name": subscriber.name or ""},
                           deliveries=reports.deliveries_of(subscriber.id),
                           paused_until=preferences.pause_in_force(subscriber),
                           **_sunset_view(subscriber))


def _sunset_view(subscriber: Subscriber) -> dict:
    row = db.session.get(ReaderSunset, subscriber.id)
    return {"sunset_state": row.state.value if row else "active",
            "sunset_since": row and row.changed_at,
            "sunset_paused": sunset.paused_by_sunset(subscriber)}
