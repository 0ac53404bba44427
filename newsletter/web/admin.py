"""The editor workspace at /admin: thin views over the services."""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from newsletter.extensions import db, limiter, login_manager
from newsletter.mail.transport import Outcome
from newsletter.models import Article, ArticleSource, Digest, Subscriber, SubscriberStatus
from newsletter.queue import send_task_now
from newsletter.services import (
    articles,
    deliverability,
    digests,
    editors,
    privacy,
    reports,
    subscriber_lists,
)
from newsletter.services.article_files import parse_date
from newsletter.services.articles import ArticleInput, InvalidArticle
from newsletter.services.schedule import parse_schedule
from newsletter.web.security import MAX_ID, mail_document

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)
login_manager.user_loader(editors.load_editor)


@bp.before_request
def require_login():
    # Every admin route but the login page is for editors only.
    if request.endpoint != "admin.login" and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def _local_path(target: str | None) -> str:
    """Only same-site paths: never an open redirect to another host. Browsers read
    ``//host``, ``/\\host`` and ``/<TAB>/host`` (they drop tabs and newlines) as
    another host, so those are refused along with every control character."""
    if not target:
        return url_for("admin.dashboard")
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target)):
        log.warning("refused redirect target %r", target[:200])
        return url_for("admin.dashboard")
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;50 per hour", methods=["POST"])
def login():
    if request.method == "POST":
        editor = editors.authenticate(request.form.get("email", ""),
                                      request.form.get("password", ""))
        if editor is not None:
            session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME
            login_user(editor)
            return redirect(_local_path(request.args.get("next")))
        flash("That email and password do not match an editor.", "error")
        return render_template("admin/login.html", email=request.form.get("email", "")), 401
    return render_template("admin/login.html", email="")


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("admin.login"))


@bp.get("/")
def dashboard():
    return render_template(
        "admin/dashboard.html",
        by_status=reports.subscribers_by_status(),
        growth=reports.weekly_growth(),
        issues=reports.recent_issues(5),
        upcoming=digests.new_articles(),
        scheduled=digests.scheduled(),
        schedule=parse_schedule(current_app.config["DIGEST_SCHEDULE"]),
    )


@bp.get("/digests")
def digests_page():
    subject = request.args.get("subject") or None
    intro = request.args.get("intro", "")
    return render_template("admin/digests.html", preview=digests.preview(subject, intro),
                           upcoming=digests.new_articles(), subject=subject or "", intro=intro,
                           issues=reports.recent_issues(20), drafts=digests.drafts())


@bp.get("/digests/preview")
def digest_preview():
    """The compose page's sandboxed iframe: the mail's HTML under the mail policy."""
    preview = digests.preview(request.args.get("subject") or None, request.args.get("intro", ""))
    if preview is None:
        abort(404)
    return mail_document(preview.html, framed_by_self=True)


@bp.post("/digests/send")
def send_digest():
    digest = digests.send_now(subject=request.form.get("subject") or None,
                              intro=request.form.get("intro", ""))
    if digest is None:
        flash("Nothing new since the last issue: nothing was sent.", "error")
        return redirect(url_for("admin.digests_page"))
    return redirect(url_for("admin.digest_report", digest_id=digest.id))


@bp.post("/digests/schedule")
def schedule_digest():
    subject, intro = request.form.get("subject") or None, request.form.get("intro", "")
    zone = parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone
    try:
        local = datetime.fromisoformat(request.form.get("send_at", ""))
        digest = digests.schedule(local.replace(tzinfo=zone), subject, intro)
    except ValueError as error:  # includes digests.ScheduleError
        message = str(error) if isinstance(error, digests.ScheduleError) else (
            "Enter the date and time to send it.")
        flash(message, "error")
        return redirect(url_for("admin.digests_page", subject=subject or "", intro=intro))
    if digest is None:
        flash("Nothing new since the last issue: nothing was scheduled.", "error")
        return redirect(url_for("admin.digests_page"))
    flash(f"Scheduled for {digest.send_at.astimezone(zone):%d %b %Y %H:%M} ({zone.key}).",
          "ok")
    return redirect(url_for("admin.digest_report", digest_id=digest.id))


@bp.post("/digests/test")
def send_test_digest():
    subject, intro = request.form.get("subject") or None, request.form.get("intro", "")
    result = digests.send_test(current_user.email, subject, intro)
    if result.outcome is Outcome.SENT:
        flash(f"Test sent to {current_user.email}.", "ok")
    else:
        flash(f"The test was not sent: {result.detail}", "error")
    return redirect(url_for("admin.digests_page", subject=subject or "", intro=intro))


@bp.get("/digests/<int:digest_id>")
def digest_report(digest_id: int):
    digest = db.session.get(Digest, digest_id) or abort(404)
    return render_template("admin/digest.html", digest=digest,
                           progress=digests.progress(digest_id),
                           bounced=reports.bounced_in(digest_id))


@bp.get("/digests/<int:digest_id>/progress")
def digest_progress(digest_id: int):
    digest = db.session.get(Digest, digest_id) or abort(404)
    return jsonify(status=digest.status.value, **digests.progress(digest_id))


_CONTROLS = {  # action: (service, what the editor is told)
    "pause": (digests.pause, "Issue paused."),
    "resume": (digests.resume, "Issue resumed."),
    "cancel": (digests.cancel, "Issue cancelled; its articles are free for a new issue."),
    "start": (lambda digest_id: digests.start_draft(digest_id) is not None, "Sending started."),
    "discard": (digests.discard, "Draft discarded; its articles go into the next issue."),
}


@bp.post("/digests/<int:digest_id>/<any(pause, resume, cancel, start, discard):action>")
def control_digest(digest_id: int, action: str):
    if action == "resume" and deliverability.paused_by_guard(db.session.get(Digest, digest_id)):
        flash("The deliverability guard paused this send: confirm below to resume it.", "error")
        return redirect(url_for("admin.digest_report", digest_id=digest_id))
    service, done = _CONTROLS[action]
    if service(digest_id):
        flash(done, "ok")
    else:
        past = "cancelled" if action == "cancel" else action.rstrip("e") + "ed"
        flash(f"This issue cannot be {past} in its current state.", "error")
    return redirect(url_for("admin.digest_report", digest_id=digest_id))


@bp.get("/articles")
def articles_page():
    query = request.args.get("q", "")
    return render_template("admin/articles.html", query=query,
                           articles=reports.search_articles(query))


def _article_form() -> ArticleInput:
    form = request.form
    return ArticleInput(
        title=form.get("title", ""), url=form.get("url", ""), summary=form.get("summary", ""),
        body_html=form.get("body_html", ""), author=form.get("author") or None,
        categories=[c for c in form.get("categories", "").split(",") if c.strip()],
        published_at=parse_date(form.get("published_at") or None),
    )


@bp.route("/articles/new", methods=["GET", "POST"])
@bp.route("/articles/<int:article_id>/edit", methods=["GET", "POST"])
def edit_article(article_id: int | None = None):
    article = db.session.get(Article, article_id) if article_id else None
    if article_id and article is None:
        abort(404)
    if request.method == "POST":
        try:
            data = _article_form()
            if article is None:
                article, created = articles.add_article(data, ArticleSource.EDITOR)
                if not created:
                    raise InvalidArticle("An article with this URL exists already.")
            else:
                articles.update_article(article.id, data)
        except InvalidArticle as error:
            flash(str(error), "error")
            return render_template("admin/article.html", article=article,
                                   form=request.form), 400
        flash("Article saved.", "ok")
        return redirect(url_for("admin.articles_page"))
    return render_template("admin/article.html", article=article, form=None)


@bp.post("/articles/<int:article_id>/exclude")
def exclude_article(article_id: int):
    exclude = request.form.get("exclude") == "1"
    if articles.set_excluded(article_id, exclude) is None:
        abort(404)
    back = request.form.get("back")
    return redirect(_local_path(back) if back else
                    url_for("admin.articles_page", q=request.args.get("q", "")))


@bp.post("/articles/fetch")
def fetch_feeds():
    if send_task_now("workers.tasks.poll_feeds"):
        flash("Fetching the feeds; new articles appear here in a moment.", "ok")
    else:
        flash("The task queue is unreachable; the feeds are fetched on the next schedule.",
              "error")
    return redirect(url_for("admin.articles_page"))


@bp.route("/tokens", methods=["GET", "POST"])
def tokens_page():
    new_token = None
    if request.method == "POST":
        new_token = editors.create_api_token(current_user.email,
                                             request.form.get("name", "").strip())
    return render_template("admin/tokens.html", new_token=new_token,
                           tokens=editors.list_tokens(current_user.id))


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    if editors.revoke_token(current_user.id, token_id):
        flash("Token revoked: it no longer works.", "ok")
    else:
        flash("No such token of yours.", "error")
    return redirect(url_for("admin.tokens_page"))


@bp.get("/subscribers")
def subscribers_page():
    query, status = request.args.get("q", ""), request.args.get("status", "")
    page = request.args.get("page", "1")
    # ASCII digits only ("²".isdigit() is true), and an offset the database can take.
    page_number = int(page) if page.isascii() and page.isdigit() and len(page) < 7 else 1
    page_number = max(1, min(page_number, MAX_ID // reports.PAGE_SIZE))
    return render_template("admin/subscribers.html", query=query, status=status,
                           page=page_number, statuses=[s.value for s in SubscriberStatus],
                           subscribers=reports.search_subscribers(query, status, page_number),
                           page_size=reports.PAGE_SIZE)


@bp.route("/subscribers/import", methods=["GET", "POST"])
def import_subscribers():
    """Two steps: upload and see a dry-run report, then confirm to write."""
    consent = request.form.get("consent", "").strip() or None
    if request.method == "GET":
        return render_template("admin/import.html", report=None, upload=None, consent="")
    upload = request.form.get("upload")
    if upload:  # step two: the file checked in step one
        data = subscriber_lists.read_upload(upload)
        if data is None:
            flash("That upload expired; choose the file again.", "error")
            return redirect(url_for("admin.import_subscribers"))
    else:
        file = request.files.get("file")
        data = file.read() if file else b""
        if not data:
            flash("Choose a CSV file to import.", "error")
            return render_template("admin/import.html", report=None, upload=None,
                                   consent=consent or ""), 400
    dry_run = request.form.get("action") != "import"
    try:
        report = subscriber_lists.import_csv(data, consent, dry_run=dry_run)
    except subscriber_lists.ListFileError as error:
        flash(str(error), "error")
        return render_template("admin/import.html", report=None, upload=None,
                               consent=consent or ""), 400
    if dry_run:
        return render_template("admin/import.html", report=report, consent=consent or "",
                               upload=upload or subscriber_lists.keep_upload(data))
    subscriber_lists.discard_upload(upload)
    flash(f"Imported {report.valid} subscriber(s); {report.duplicates} already known, "
          f"{len(report.invalid)} invalid.", "ok")
    return redirect(url_for("admin.subscribers_page"))


@bp.get("/subscribers/export.csv")
def export_subscribers():
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
def export_subscriber(subscriber_id: int):
    data = privacy.export_subscriber(subscriber_id)
    if data is None:
        abort(404)
    response = jsonify(data)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="subscriber-{subscriber_id}.json"')
    return response


@bp.post("/subscribers/<int:subscriber_id>/erase")
def erase_subscriber(subscriber_id: int):
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the erasure.", "error")
    elif privacy.erase_subscriber(subscriber_id):
        flash("Personal data erased; the address stays suppressed.", "ok")
    else:
        flash("Nothing to erase.", "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber_page(subscriber_id: int):
    subscriber = db.session.get(Subscriber, subscriber_id) or abort(404)
    return render_template("admin/subscriber.html", subscriber=subscriber)
