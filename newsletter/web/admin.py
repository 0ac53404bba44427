"""The editor workspace at /admin: thin views over the domain packages."""

from __future__ import annotations

import csv
import io
import logging
import time
from datetime import UTC, datetime, timedelta
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

from newsletter import jobs
from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput, InvalidArticle
from newsletter.delivery import guard
from newsletter.editors import (
    accounts,
    audit,
    editor_mail,
    invites,
    login_throttle,
    sessions,
    two_factor,
)
from newsletter.extensions import db, limiter, login_manager
from newsletter.issues import digests, reports
from newsletter.issues.schedule import LocalTimeError, local_time, local_to_utc, parse_schedule
from newsletter.mail.addresses import InvalidAddress
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.models import (
    Article,
    ArticleSource,
    ConsentSource,
    Digest,
    EditorMailKind,
    Role,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.queue import send_task_now
from newsletter.readers import privacy, subscriber_lists, subscriptions
from newsletter.web.common import newsletter_zone, request_origin
from newsletter.web.errors import error_response
from newsletter.web.security import MAX_ID, mail_document

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)

# Every view declares who may open it. A view without a declaration is refused
# (and the role-matrix test fails), so a new route cannot be left open by mistake.
PUBLIC = "public"  # no login: the login pages and invitation links
ANY_EDITOR = "any"  # any logged-in editor, whatever the role
# Requests a page makes by itself: they must not keep an idle session alive.
PASSIVE_ENDPOINTS = {"admin.digest_progress", "admin.import_job"}
# What an editor who must enrol 2FA first may still open.
ENROLMENT_ENDPOINTS = {"admin.account", "admin.enable_two_factor", "admin.logout",
                       "admin.end_all_sessions"}
PENDING_LOGIN_SECONDS = 300


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
    return editor if live is not None else None


def _actor() -> audit.Actor:
    if current_user.is_authenticated:
        return audit.Actor(current_user.id, current_user.email, request.remote_addr)
    return audit.Actor(None, "anonymous", request.remote_addr)


def _audit(action: str, *, outcome: str = "ok", target=None, detail: str | None = None,
           actor: audit.Actor | None = None) -> None:
    audit.record(actor or _actor(), action, outcome=outcome,
                 target=None if target is None else str(target), detail=detail)


def _two_factor_missing() -> bool:
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
        _audit("access", outcome="denied", target=request.endpoint, detail="no role declared")
        return error_response(403, "This page declares no role, so nobody may open it.")
    if _two_factor_missing() and request.endpoint not in ENROLMENT_ENDPOINTS:
        flash("Set up two-factor login to continue: it is required for every editor.",
              "error")
        return redirect(url_for("admin.account"))
    if needed != ANY_EDITOR and not current_user.role.allows(needed):
        _audit("access", outcome="denied", target=request.endpoint,
               detail=f"needs {needed.value}, has {current_user.role.value}")
        return error_response(403, f"This needs the {needed.value} role; you are "
                                   f"{current_user.role.value}.")
    return None


def _landing() -> str:
    if current_user.is_authenticated and current_user.role.allows(Role.EDITOR):
        return url_for("admin.dashboard")
    return url_for("admin.articles_page")


def _local_path(target: str | None) -> str:
    """Only same-site paths: never an open redirect to another host. Browsers read
    ``//host``, ``/\\host`` and ``/<TAB>/host`` (they drop tabs and newlines) as
    another host, so those are refused along with every control character."""
    if not target:
        return _landing()
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target)):
        log.warning("refused redirect target %r", target[:200])
        return _landing()
    return target


def _login_limit_key() -> str:
    return "login:" + login_throttle.client_network(request.remote_addr)


def _throttled(email: str, wait: int):
    _audit("login", outcome="throttled", actor=audit.Actor(None, email or "-",
                                                           request.remote_addr))
    flash(f"Too many failed logins for this account. Try again in {wait} s.", "error")
    return render_template("admin/login.html", email=email), 429, {"Retry-After": str(wait)}


def _failed(email: str, editor_id: int | None, action: str, detail: str) -> None:
    failures = login_throttle.record_failure(email)
    _audit(action, outcome="failed", detail=detail,
           actor=audit.Actor(editor_id, email or "-", request.remote_addr), target=None)
    if editor_id is not None and failures == current_app.config["LOGIN_ALERT_AFTER"]:
        editor_mail.owe(editor_id, EditorMailKind.LOGIN_ALERT)
        db.session.commit()


@bp.route("/login", methods=["GET", "POST"])
@allow(PUBLIC)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_login_limit_key,
               methods=["POST"])
def login():
    if request.method == "GET":
        return render_template("admin/login.html", email="")
    email = request.form.get("email", "").strip().lower()[:254]
    wait = login_throttle.wait_seconds(email)
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
    login_throttle.reset(editor.email)
    _audit("login", detail=method)
    if _two_factor_missing():
        return redirect(url_for("admin.account"))
    return redirect(_local_path(next_path))


def _pending_editor():
    pending = session.get("pending_login")
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > (
            PENDING_LOGIN_SECONDS):
        return None, None
    editor = accounts.load_editor(str(pending.get("editor")))
    return (editor, pending) if editor is not None and editor.is_active else (None, None)


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
    wait = login_throttle.wait_seconds(editor.email)
    if wait:
        return _throttled(editor.email, wait)
    method = two_factor.verify(editor, request.form.get("code", ""))
    if method is None:
        _failed(editor.email, editor.id, "login_2fa", "wrong, expired or used code")
        flash("That code is wrong, expired or already used.", "error")
        return render_template("admin/login_verify.html"), 401
    return _complete_login(editor, method, pending.get("next"))


@bp.post("/logout")
@allow(ANY_EDITOR)
def logout():
    _audit("logout")
    sessions.end(session.get("sk"))  # every copy of this cookie stops working
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
        _audit("2fa_enable", outcome="failed", detail="wrong code")
        flash("That code does not match: check the time on your phone and try again.",
              "error")
        return redirect(url_for("admin.account"))
    _audit("2fa_enable")
    return render_template("admin/account.html", recovery_codes=codes, qr=None,
                           sessions=sessions.live_sessions(current_user.id),
                           current_key=session.get("sk"),
                           codes_left=len(codes))


@bp.post("/account/2fa/disable")
@allow(ANY_EDITOR)
def disable_two_factor():
    if current_app.config["REQUIRE_TWO_FACTOR"]:
        _audit("2fa_disable", outcome="denied", detail="two-factor login is required")
        flash("Two-factor login is required for every editor here.", "error")
    elif two_factor.verify(current_user, request.form.get("code", "")) is None:
        _audit("2fa_disable", outcome="failed", detail="wrong code")
        flash("That code is wrong, expired or already used.", "error")
    else:
        two_factor.disable(current_user)
        _audit("2fa_disable")
        flash("Two-factor login is off.", "ok")
    return redirect(url_for("admin.account"))


@bp.post("/account/sessions/end-all")
@allow(ANY_EDITOR)
def end_all_sessions():
    ended = sessions.end_all(current_user.id)
    _audit("logout_all", detail=f"{ended} session(s)")
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
        _audit("invite_accepted", actor=audit.Actor(editor.id, editor.email,
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
            _audit("editor_invite", outcome="failed", detail=str(error))
            flash(str(error), "error")
        else:
            _audit("editor_invite", target=editor.email, detail=editor.role.value)
            flash(f"Invitation sent to {editor.email}.", "ok")
        return redirect(url_for("admin.editors_page"))
    return render_template("admin/accounts.html", editors=accounts.list_editors(),
                           roles=[role.value for role in Role])


@bp.post("/editors/<int:editor_id>/role")
@allow(Role.OWNER)
def change_editor_role(editor_id: int):
    try:
        editor = accounts.change_role(editor_id, request.form.get("role", ""))
    except accounts.EditorError as error:
        _audit("role_change", outcome="failed", target=editor_id, detail=str(error))
        flash(str(error), "error")
    else:
        _audit("role_change", target=editor.email, detail=editor.role.value)
        flash(f"{editor.email} is now {editor.role.value}.", "ok")
    return redirect(url_for("admin.editors_page"))


@bp.post("/editors/<int:editor_id>/remove")
@allow(Role.OWNER)
def remove_editor(editor_id: int):
    try:
        editor = accounts.remove_editor(editor_id)
    except accounts.EditorError as error:
        _audit("editor_remove", outcome="failed", target=editor_id, detail=str(error))
        flash(str(error), "error")
    else:
        _audit("editor_remove", target=editor.email)
        flash(f"{editor.email} was removed; their sessions and tokens ended.", "ok")
    return redirect(url_for("admin.editors_page"))


def _date_arg(name: str):
    try:
        return datetime.fromisoformat(request.args.get(name, "")).replace(tzinfo=UTC)
    except ValueError:
        return None


@bp.get("/audit")
@allow(Role.OWNER)
def audit_page():
    page = request.args.get("page", "1")
    page_number = int(page) if page.isdigit() and len(page) < 7 else 1
    filters = {name: request.args.get(name, "")[:254] for name in ("actor", "action",
                                                                     "outcome")}
    until = _date_arg("until")
    events = audit.search(**filters, since=_date_arg("since"),
                          until=until + timedelta(days=1) if until else None,
                          page=page_number)
    return render_template("admin/audit.html", events=events, page=page_number,
                           actions=audit.actions(), page_size=audit.PAGE_SIZE,
                           since=request.args.get("since", ""),
                           until=request.args.get("until", ""), **filters)


@bp.get("/")
@allow(Role.EDITOR)
def dashboard():
    return render_template(
        "admin/dashboard.html",
        by_status=reports.subscribers_by_status(),
        growth=reports.weekly_growth(),
        issues=reports.recent_issues(5),
        failing=reports.issues_with_failures(),
        upcoming=digests.new_articles(),
        scheduled=digests.scheduled(),
        schedule=parse_schedule(current_app.config["DIGEST_SCHEDULE"]),
    )


COMPOSE_FIELDS = ("subject", "headline", "intro", "send_date", "send_time", "as_topics")


def _compose_form(values) -> dict[str, str]:
    """The compose form as typed: every action reads these same fields."""
    return {name: values.get(name, "") for name in COMPOSE_FIELDS}


def _slugs(text: str) -> list[str]:
    """Topic slugs typed comma-separated ("as a reader of topics X, Y")."""
    return [slug.strip() for slug in text.split(",") if slug.strip()]


def _preview(form: dict[str, str]):
    """The next issue as the form says, as a reader of its topics if it names any (a
    topic that is unknown or has nothing new: the whole issue, and the page says why)."""
    subject, intro, headline = form["subject"] or None, form["intro"], form["headline"]
    try:
        return digests.preview(subject, intro, headline, _slugs(form["as_topics"]))
    except topics.TopicError as error:
        flash(str(error), "error")
        return digests.preview(subject, intro, headline)


def _compose_page(form: dict[str, str], status: int = 200):
    text = {name: form[name] for name in ("subject", "headline", "intro")}
    back = url_for("admin.digests_page", **{k: v for k, v in text.items() if v})
    return render_template("admin/digests.html", form=form, back=back,
                           preview=_preview(form),
                           upcoming=digests.new_articles(), zone=newsletter_zone().key,
                           default_headline=digests.default_headline(),
                           issues=reports.recent_issues(20), drafts=digests.drafts()), status


@bp.route("/digests", methods=["GET", "POST"])
@allow(Role.EDITOR)
def digests_page():
    """GET: a fresh form (or one a link filled in); POST: "Update preview" or "Back to
    edit" from a confirmation, the form as typed. Neither changes anything."""
    return _compose_page(_compose_form(request.form if request.method == "POST"
                                       else request.args))


@bp.route("/digests/preview", methods=["GET", "POST"])
@allow(Role.EDITOR)
def digest_preview():
    """The compose page's sandboxed iframe (the mail's HTML under the mail policy), or
    with ``part=text`` the text part the page shows beside it. The page's script POSTs
    the compose form itself: a long intro does not fit in a URL."""
    form = _compose_form(request.form if request.method == "POST" else request.args)
    try:
        preview = digests.preview(form["subject"] or None, form["intro"], form["headline"],
                                  _slugs(form["as_topics"]))
    except topics.TopicError:
        abort(400)  # the compose page says why, beside the frame
    if preview is None:
        abort(404)
    if request.args.get("part") == "text":
        return Response(f"Subject: {preview.subject}\n\n{preview.text}",
                        mimetype="text/plain")
    return mail_document(preview.html, framed_by_self=True)


def _send_at(form: dict[str, str]) -> datetime:
    """The typed date and time in the newsletter's zone, as a UTC instant in the
    future; LocalTimeError or ScheduleError (both ValueError) say what is wrong."""
    if not (form["send_date"].strip() and form["send_time"].strip()):
        raise LocalTimeError("Enter the date and time to send it.")
    send_at = local_to_utc(form["send_date"], form["send_time"], newsletter_zone())
    digests.check_send_at(send_at)
    return send_at


def _confirmed() -> int | None:
    """The reader count the editor said yes to, None before the confirmation step."""
    count = request.form.get("confirmed", "")
    return int(count) if count.isascii() and count.isdigit() and len(count) < 10 else None


def _confirm_page(form: dict[str, str], action: str, send_at: datetime | None = None,
                  status: int = 200):
    """Ask "Send 'SUBJECT' to N readers?" with the count the send will be held to."""
    upcoming = digests.new_articles()
    if not upcoming:
        flash("Nothing new since the last issue: nothing was sent.", "error")
        return redirect(url_for("admin.digests_page"))
    return render_template("admin/digest_confirm.html", form=form, action=action,
                           subject=form["subject"] or digests.default_subject(upcoming),
                           readers=digests.active_subscriber_count(), articles=len(upcoming),
                           send_at=send_at), status


@bp.post("/digests/send")
@allow(Role.EDITOR)
def send_digest():
    form = _compose_form(request.form)
    readers = _confirmed()
    if readers is None:
        return _confirm_page(form, "admin.send_digest")
    try:
        digest = digests.send_now(subject=form["subject"] or None, intro=form["intro"],
                                  headline=form["headline"], expected_recipients=readers)
    except digests.RecipientsChanged:
        flash("The number of confirmed readers changed since you looked: check it again.",
              "error")
        return _confirm_page(form, "admin.send_digest", status=409)
    if digest is None:
        flash("Nothing new since the last issue: nothing was sent.", "error")
        return redirect(url_for("admin.digests_page"))
    _audit("send", target=f"digest {digest.id}", detail=f"{digest.recipients} recipient(s)")
    return redirect(url_for("admin.digest_report", digest_id=digest.id))


@bp.post("/digests/schedule")
@allow(Role.EDITOR)
def schedule_digest():
    form = _compose_form(request.form)
    try:
        send_at = _send_at(form)
    except ValueError as error:
        flash(str(error), "error")
        return _compose_page(form, 400)
    if _confirmed() is None:
        return _confirm_page(form, "admin.schedule_digest", send_at)
    digest = digests.schedule(send_at, form["subject"] or None, form["intro"], form["headline"])
    if digest is None:
        flash("Nothing new since the last issue: nothing was scheduled.", "error")
        return redirect(url_for("admin.digests_page"))
    _audit("schedule", target=f"digest {digest.id}", detail=digest.send_at.isoformat())
    flash(f"Scheduled for {local_time(digest.send_at, newsletter_zone())}.", "ok")
    return redirect(url_for("admin.digest_report", digest_id=digest.id))


@bp.post("/digests/test")
@allow(Role.EDITOR)
def send_test_digest():
    form = _compose_form(request.form)
    try:
        result = digests.send_test(current_user.email, form["subject"] or None, form["intro"],
                                   form["headline"], _slugs(form["as_topics"]))
    except topics.TopicError as error:
        result = DeliveryResult(Outcome.FAILED, str(error))
    _audit("send_test", outcome="ok" if result.outcome is Outcome.SENT else "failed",
           detail=f"as a reader of {form['as_topics'][:200]}" if form["as_topics"] else None)
    if result.outcome is Outcome.SENT:
        flash(f"Test sent to {current_user.email}.", "ok")
    else:
        flash(f"The test was not sent: {result.detail}", "error")
    return _compose_page(form)  # the form comes back as typed


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
                           not_reached=reports.not_reached(digest.id)), status


@bp.post("/digests/<int:digest_id>/edit")
@allow(Role.EDITOR)
def edit_digest(digest_id: int):
    """Change a scheduled issue's subject, headline, intro or time before it goes out."""
    digest = db.session.get(Digest, digest_id) or abort(404)
    form = _compose_form(request.form)
    try:
        changed = digests.update_scheduled(digest_id, _send_at(form), form["subject"],
                                           form["intro"], form["headline"])
    except ValueError as error:
        flash(str(error), "error")
        return _report_page(digest, form, 400)
    _audit("schedule_edit", target=f"digest {digest_id}", outcome="ok" if changed else "failed")
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
    "start": (lambda digest_id: digests.start_draft(digest_id) is not None, "Sending started."),
    "discard": (digests.discard, "Draft discarded; its articles go into the next issue."),
}


@bp.post("/digests/<int:digest_id>/<any(pause, resume, cancel, start, discard):action>")
@allow(Role.EDITOR)
def control_digest(digest_id: int, action: str):
    if action == "resume" and guard.paused_by_guard(db.session.get(Digest, digest_id)):
        flash("The deliverability guard paused this send: confirm below to resume it.", "error")
        return redirect(url_for("admin.digest_report", digest_id=digest_id))
    service, done = _CONTROLS[action]
    changed = service(digest_id)
    _audit(action, target=f"digest {digest_id}", outcome="ok" if changed else "failed")
    if changed:
        flash(done, "ok")
    else:
        past = "cancelled" if action == "cancel" else action.rstrip("e") + "ed"
        flash(f"This issue cannot be {past} in its current state.", "error")
    return redirect(url_for("admin.digest_report", digest_id=digest_id))


@bp.get("/articles")
@allow(Role.AUTHOR)
def articles_page():
    query = request.args.get("q", "")
    return render_template("admin/articles.html", query=query,
                           articles=reports.search_articles(query))


LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> shows


def _local_input(moment: datetime) -> str:
    return moment.astimezone(newsletter_zone()).strftime(LOCAL_INPUT_FORMAT)


def _published_at(value: str, article: Article | None) -> datetime | None:
    """The time typed in the newsletter's zone; None keeps it (now, for a new article).
    An untouched field keeps the stored time to the second."""
    value = value.strip()
    if not value or (article is not None and value == _local_input(article.published_at)):
        return None
    moment = datetime.fromisoformat(value)  # ValueError: the caller says what to type
    if not 1970 <= moment.year <= 9000:  # year 1 or 9999 would overflow on the way to UTC
        raise ValueError("year out of range")
    return moment if moment.tzinfo else moment.replace(tzinfo=newsletter_zone())


def _article_form(article: Article | None) -> tuple[ArticleInput, list[str]]:
    """The form as an article, and the problems only the form can have."""
    form, problems = request.form, []
    try:
        published_at = _published_at(form.get("published_at", ""), article)
    except ValueError:
        published_at = None
        problems.append("Give the publication time as a date and time, e.g. "
                        "2026-11-28 14:34, or leave it empty.")
    body, is_markdown = form.get("body", ""), form.get("body_format") != "html"
    data = ArticleInput(
        title=form.get("title", ""), url=form.get("url", ""), summary=form.get("summary", ""),
        body_html="" if is_markdown else body, body_markdown=body if is_markdown else None,
        author=form.get("author") or None,
        categories=[c for c in form.get("categories", "").split(",") if c.strip()],
        published_at=published_at,
    )
    return data, problems


def _article_page(article: Article | None, problems: list[str] = ()):
    form = request.form if problems else None
    if form is not None:
        value = form.to_dict()
    elif article is not None:
        value = {"title": article.title, "url": article.url, "summary": article.summary,
                 "categories": ", ".join(article.categories), "author": article.author or "",
                 "published_at": _local_input(article.published_at),
                 "body_format": "html" if article.body_markdown is None else "markdown",
                 "body": article.body_html if article.body_markdown is None
                 else article.body_markdown}
    else:
        value = {"body_format": "markdown"}
    return render_template("admin/article.html", article=article, value=value,
                           problems=problems, zone=newsletter_zone().key, limits=articles,
                           **_article_topics(article, request.form.getlist("topics")
                                             if form is not None else None)
                           ), 400 if problems else 200


@bp.route("/articles/new", methods=["GET", "POST"])
@bp.route("/articles/<int:article_id>/edit", methods=["GET", "POST"])
@allow(Role.AUTHOR)
def edit_article(article_id: int | None = None):
    article = db.session.get(Article, article_id) if article_id else None
    if article_id and article is None:
        abort(404)
    if request.method == "GET":
        return _article_page(article)
    data, problems = _article_form(article)
    chosen_topics = _topic_ids(request.form.getlist("topics"))
    if chosen_topics is None:
        problems.append("No such topic.")
    try:
        if problems:  # still check the rest, so every problem shows at once
            articles.validate(data)
            raise InvalidArticle()
        if article is None:
            added, created = articles.add_article(data, ArticleSource.EDITOR)
            if not created:
                raise InvalidArticle("An article with this URL exists already.")
            article_id = added.id
        else:
            articles.update_article(article.id, data)
        topics.set_manual_topics(article_id, chosen_topics)
    except InvalidArticle as error:
        return _article_page(article, problems + error.problems)
    _audit("article_save", target=f"article {article_id}")
    flash("Article saved.", "ok")
    return redirect(url_for("admin.articles_page"))


def _article_topics(article: Article | None, posted: list[str] | None = None) -> dict:
    """The topic checkboxes: ticked where an editor put the article by hand (or, when
    the form comes back with an error, as they were sent)."""
    all_topics = topics.list_topics()
    if posted is not None:
        ticked = {topic.id for topic in all_topics if str(topic.id) in posted}
    else:
        ticked = topics.manual_topic_ids(article.id) if article else set()
    return {"all_topics": all_topics, "ticked_topics": ticked}


def _topic_ids(values: list[str]) -> list[int] | None:
    """The topics ticked on the article form; None when one is not a topic."""
    known = {str(topic.id): topic.id for topic in topics.list_topics()}
    if not all(value in known for value in values):
        return None
    return [known[value] for value in values]


@bp.post("/articles/preview")
@allow(Role.AUTHOR)
def preview_article():
    """The edit form's live preview: the body as it would be stored (sanitised)."""
    body = request.form.get("body", "")
    too_big = articles.body_too_big(body)
    if too_big:
        return jsonify(error=too_big), 400
    return jsonify(html=articles.render_body(body, request.form.get("body_format") != "html"))


@bp.post("/articles/<int:article_id>/exclude")
@allow(Role.AUTHOR)
def exclude_article(article_id: int):
    exclude = request.form.get("exclude") == "1"
    if articles.set_excluded(article_id, exclude) is None:
        abort(404)
    _audit("article_exclude" if exclude else "article_include", target=f"article {article_id}")
    back = request.form.get("back")
    return redirect(_local_path(back) if back else
                    url_for("admin.articles_page", q=request.args.get("q", "")))


@bp.post("/articles/fetch")
@allow(Role.AUTHOR)
def fetch_feeds():
    if send_task_now(jobs.POLL_FEEDS):
        flash("Fetching the feeds; new articles appear here in a moment.", "ok")
    else:
        flash("The task queue is unreachable; the feeds are fetched on the next schedule.",
              "error")
    return redirect(url_for("admin.articles_page"))


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
            _audit("token_create", outcome="failed", target=holder, detail=str(error))
            flash(str(error), "error")
        else:
            _audit("token_create", target=f"token {row.id} of {holder}", detail=row.scopes)
    return render_template("admin/tokens.html", new_token=new_token,
                           tokens=accounts.list_tokens(), scopes=list(accounts.SCOPES),
                           editors=[e for e in accounts.list_editors() if e.is_active],
                           now=utcnow())


@bp.post("/tokens/<int:token_id>/revoke")
@allow(Role.OWNER)
def revoke_token(token_id: int):
    if accounts.revoke_token(token_id):
        _audit("token_revoke", target=f"token {token_id}")
        flash("Token revoked: it no longer works.", "ok")
    else:
        flash("No such live token.", "error")
    return redirect(url_for("admin.tokens_page"))


@bp.get("/subscribers")
@allow(Role.EDITOR)
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
@allow(Role.EDITOR)
def import_subscribers():
    """Two steps, each a job run by a worker: check the file and see the report, then
    confirm to write. The request only stores the file and returns at once."""
    consent = request.form.get("consent", "").strip()[:1000] or None
    if request.method == "GET":
        return render_template("admin/import.html", job=None, consent="")
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
            return render_template("admin/import.html", job=None, consent=consent or ""), 400
        file.stream.seek(0)
        upload, dry_run = subscriber_lists.keep_upload(file.stream), True
    job = subscriber_lists.start_import_job(upload, consent, dry_run, current_user.id)
    _audit("import_check" if dry_run else "import", target=f"import job {job.id}",
           detail=f"consent: {consent}" if consent else "with confirmation mails")
    return redirect(url_for("admin.import_job", job_id=job.id))


@bp.get("/subscribers/import/<int:job_id>")
@allow(Role.EDITOR)
def import_job(job_id: int):
    job = subscriber_lists.import_job(job_id) or abort(404)
    return render_template("admin/import.html", job=job, consent=job.consent or "",
                           sample_lines=subscriber_lists.sample_lines)


MAX_NOTE = 1000  # a consent statement or an editor's note, as in the import


def _note(name: str) -> str | None:
    return request.form.get(name, "").strip()[:MAX_NOTE] or None


@bp.route("/subscribers/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def add_subscriber():
    """One reader by hand, under the import's rules (consent, suppression, limits)."""
    if request.method == "GET":
        return render_template("admin/subscriber_new.html", form={})
    try:
        subscriber, owed = subscriptions.add_by_hand(
            request.form.get("email", ""), request.form.get("name", ""), _note("consent"),
            request_origin(ConsentSource.EDITOR))
    except (InvalidAddress, subscriptions.SubscriberError) as error:
        _audit("subscriber_add", outcome="failed", detail=str(error))
        flash(str(error), "error")
        return render_template("admin/subscriber_new.html", form=request.form), 400
    _audit("subscriber_add", target=f"subscriber {subscriber.id}",
           detail="as confirmed" if subscriber.confirmed_at else "pending")
    if subscriber.confirmed_at:
        flash("Reader added as confirmed.", "ok")
    elif owed:
        flash("Reader added; a confirmation mail is on its way.", "ok")
    else:
        flash("Reader added, but no confirmation was sent: this mailbox reached its limit "
              "of confirmation mails for now. Resend it later from this page.", "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber.id))


@bp.post("/subscribers/<int:subscriber_id>/edit")
@allow(Role.EDITOR)
def edit_subscriber(subscriber_id: int):
    subscriber = db.session.get(Subscriber, subscriber_id) or abort(404)
    try:
        changed = subscriptions.edit_by_hand(
            subscriber_id, request.form.get("email", ""), request.form.get("name", ""),
            _note("note"), request_origin(ConsentSource.EDITOR))
    except (InvalidAddress, subscriptions.SubscriberError) as error:
        _audit("subscriber_edit", outcome="failed", target=f"subscriber {subscriber_id}",
               detail=str(error))
        flash(str(error), "error")
        return _subscriber_view(subscriber, form=request.form), 400
    if changed:
        _audit("subscriber_edit", target=f"subscriber {subscriber_id}")
    flash("Reader updated." if changed else "Nothing changed.", "ok")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@allow(Role.EDITOR)
def unsubscribe_subscriber(subscriber_id: int):
    try:
        subscriptions.unsubscribe_subscriber(subscriber_id, request_origin(ConsentSource.EDITOR),
                                             _note("note") or "by an editor")
    except subscriptions.TokenInvalid:
        abort(404)
    _audit("subscriber_unsubscribe", target=f"subscriber {subscriber_id}")
    flash("Reader unsubscribed: no more mail goes to this address.", "ok")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/resend")
@allow(Role.EDITOR)
def resend_confirmation(subscriber_id: int):
    db.session.get(Subscriber, subscriber_id) or abort(404)
    try:
        sent = subscriptions.resend_confirmation(subscriber_id,
                                                 request_origin(ConsentSource.EDITOR))
    except subscriptions.SubscriberError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))
    _audit("confirmation_resend", target=f"subscriber {subscriber_id}",
           outcome="ok" if sent else "failed")
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
    _audit("export", target="subscribers.csv")
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
    _audit("export", target=f"subscriber {subscriber_id}")
    response = jsonify(data)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="subscriber-{subscriber_id}.json"')
    return response


@bp.post("/subscribers/<int:subscriber_id>/erase")
@allow(Role.OWNER)
def erase_subscriber(subscriber_id: int):
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the erasure.", "error")
    elif privacy.erase_subscriber(subscriber_id):
        _audit("erase", target=f"subscriber {subscriber_id}")
        flash("Personal data erased; the address stays suppressed.", "ok")
    else:
        flash("Nothing to erase.", "error")
    return redirect(url_for("admin.subscriber_page", subscriber_id=subscriber_id))


@bp.get("/subscribers/<int:subscriber_id>")
@allow(Role.EDITOR)
def subscriber_page(subscriber_id: int):
    subscriber = db.session.get(Subscriber, subscriber_id) or abort(404)
    _audit("subscriber_view", target=f"subscriber {subscriber_id}")
    return _subscriber_view(subscriber)


def _subscriber_view(subscriber: Subscriber, form=None) -> str:
    return render_template("admin/subscriber.html", subscriber=subscriber,
                           erased=subscriber.email_normalized.startswith(privacy.ERASED_PREFIX),
                           form=form or {"email": subscriber.email,
                                         "name": subscriber.name or ""},
                           deliveries=reports.deliveries_of(subscriber.id))
