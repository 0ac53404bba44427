"""Reader pages: subscribe, confirm (double opt-in), unsubscribe.

GET never changes state: mail scanners follow links. Each state change is a POST.
"""

import contextlib
import logging

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext
from markupsafe import Markup

from newsletter.content import site_logo as site_logo_service
from newsletter.content import site_settings, topics
from newsletter.content.topics import TopicError
from newsletter.db import unit_of_work
from newsletter.extensions import csrf
from newsletter.issues import archive as archive_service
from newsletter.issues import atom
from newsletter.mail.addresses import InvalidAddress
from newsletter.mail.language import N_
from newsletter.mail.links import external_url
from newsletter.mail.tokens import (
    TokenInvalid,
    check_form_token,
    make_form_token,
    read_web_copy_token,
)
from newsletter.models import ConsentSource, SubscriberStatus
from newsletter.readers import choices as reader_choices
from newsletter.readers import preferences, subscriptions
from newsletter.web.common import (
    bad_link_page,
    current_language,
    reader_message,
    remember_reader_language,
    request_origin,
    subscribe_limit,
)
from newsletter.web.errors import log_refusal
from newsletter.web.security import mail_document, page_showing_images

bp = Blueprint("public", __name__)
# Pages reached from a reader's links (a token in the URL) follow their language.
bp.url_value_preprocessor(remember_reader_language)
log = logging.getLogger(__name__)


@bp.app_context_processor
def form_token():
    # The subscribe form's CSRF token: signed and cookie-free, so it also works
    # in a cross-site iframe (see mail/tokens.py).
    return {"form_token": lambda: make_form_token(request.remote_addr)}

@bp.app_context_processor
def branding():
    # Lazy: a template that shows no branding costs no query (see site_settings.current).
    return {"branding": site_settings.current}


@bp.app_context_processor
def mail_links():
    # Mails link to pages by absolute URL under BASE_URL (a task has no request).
    return {"external_url": external_url}


@bp.app_context_processor
def subscribe_choices():
    # What the subscribe form offers: topic boxes when there are topics, a cadence
    # choice when there is a daily issue.
    return {"subscribe_topics": topics.list_topics,
            "daily_digest": bool(current_app.config["DAILY_SCHEDULE"])}

HONEYPOT_FIELD = "website"  # hidden from people; bots fill every field
FEED_LENGTH = 50  # issues in the Atom feed


@bp.get("/")
def index():
    return redirect(url_for("public.subscribe"))


@bp.route("/subscribe", methods=["GET", "POST"])
@csrf.exempt  # checked with the form token instead: an iframe sends no session cookie
@subscribe_limit
def subscribe():
    embed = request.args.get("embed") == "1"
    if request.method == "GET":
        return render_template("web/subscribe.html", embed=embed, form={})
    try:
        check_form_token(request.form.get("csrf_token"), request.remote_addr)
    except TokenInvalid as error:
        log_refusal(400, f"subscribe form token: {error}")
        return render_template("web/subscribe.html", embed=embed, form=request.form,
                               error=gettext(N_("The form expired. Please send it again."))), 400
    if request.form.get(HONEYPOT_FIELD):
        return redirect(url_for("public.subscribe_thanks", embed=int(embed)))
    try:
        subscriptions.subscribe(request.form.get("email"), request.form.get("name"),
                                request_origin(ConsentSource.FORM), **_form_choices())
    except (InvalidAddress, TopicError) as error:
        return render_template("web/subscribe.html", embed=embed, form=request.form,
                               error=reader_message(error)), 400
    return redirect(url_for("public.subscribe_thanks", embed=int(embed)))


def _form_choices() -> dict:
    """The form's topic boxes (none ticked: everything) and cadence, when it showed them."""
    choices = {}
    if request.form.get("choices") == "1":  # the form had topic boxes
        choices["topics"] = request.form.getlist("topics")
    if "cadence" in request.form:
        choices["cadence"] = request.form.get("cadence")
    zone = request.form.get("timezone", "")
    if request.form.get("language"):
        choices["language"] = request.form.get("language")
    # Filled by the browser, not typed: a zone we do not know is left out.
    with contextlib.suppress(reader_choices.ChoiceError):
        choices["timezone"] = reader_choices.check_timezone(zone) if zone else None
    return choices


@bp.get("/subscribe/thanks")
def subscribe_thanks():
    # Identical for new, pending, active and unsubscribed addresses.
    return render_template("web/subscribe_thanks.html", embed=request.args.get("embed") == "1")


@bp.get("/confirm/<token>")
def confirm(token: str):
    try:
        subscriber = subscriptions.subscriber_for_confirm_token(token)
    except TokenInvalid as error:
        return bad_link_page(error, "confirm")
    if subscriber.status == SubscriberStatus.ACTIVE:
        return render_template("web/confirmed.html", already=True,
                               latest=archive_service.latest_issue(), **_pause_of(subscriber))
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return bad_link_page(subscriptions.LinkUsed("unsubscribed since"), "confirm")
    return render_template("web/confirm.html", subscriber=subscriber, token=token)


@bp.post("/confirm/<token>")
def confirm_post(token: str):
    try:
        with unit_of_work():
            outcome = subscriptions.confirm(token, request_origin(ConsentSource.LINK))
    except TokenInvalid as error:
        return bad_link_page(error, "confirm")
    return render_template("web/confirmed.html",
                           already=outcome is subscriptions.ConfirmOutcome.ALREADY_ACTIVE,
                           latest=archive_service.latest_issue(),
                           **_pause_of(subscriptions.subscriber_for_confirm_token(token)))


def _pause_of(subscriber) -> dict:
    """What a page that welcomes a reader needs to tell them of a break still on."""
    return {"paused_until": preferences.pause_in_force(subscriber),
            "token": subscriber.unsubscribe_key}


@bp.get("/unsubscribe/<token>")
def unsubscribe(token: str):
    try:
        subscriber = subscriptions.subscriber_for_unsubscribe_token(token)
    except TokenInvalid as error:
        return bad_link_page(error, "unsubscribe")
    return render_template("web/unsubscribe.html", subscriber=subscriber, token=token)


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: mail clients POST here with no cookie or CSRF token
def unsubscribe_post(token: str):
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        csrf.protect()
    try:
        with unit_of_work():
            subscriber = subscriptions.unsubscribe(
                token, request_origin(ConsentSource.ONE_CLICK if one_click
                                      else ConsentSource.LINK))
    except TokenInvalid as error:
        return bad_link_page(error, "unsubscribe")
    return render_template("web/unsubscribed.html", subscriber=subscriber, token=token)


@bp.post("/unsubscribe/<token>/resubscribe")
@subscribe_limit
def resubscribe(token: str):
    try:
        with unit_of_work():
            outcome = subscriptions.resubscribe(token, request_origin(ConsentSource.LINK))
    except TokenInvalid as error:
        return bad_link_page(error, "unsubscribe")
    return render_template("web/resubscribed.html", outcome=outcome.value,
                           latest=archive_service.latest_issue(),
                           **_pause_of(subscriptions.subscriber_for_unsubscribe_token(token)))


@bp.route("/unsubscribe-link", methods=["GET", "POST"])
@subscribe_limit
def unsubscribe_link():
    """Ask for one's unsubscribe link by mail: the same answer whatever the address."""
    if request.method == "GET":
        return render_template("web/unsubscribe_link.html", form={})
    if request.form.get(HONEYPOT_FIELD):
        return redirect(url_for("public.unsubscribe_link_sent"))
    try:
        subscriptions.request_unsubscribe_link(request.form.get("email"),
                                               request_origin(ConsentSource.LINK))
    except InvalidAddress as error:
        return render_template("web/unsubscribe_link.html", form=request.form,
                               error=reader_message(error)), 400
    return redirect(url_for("public.unsubscribe_link_sent"))


@bp.get("/unsubscribe-link/sent")
def unsubscribe_link_sent():
    return render_template("web/unsubscribe_link_sent.html")


@bp.app_template_global()
def archive_is_public(digest) -> bool:
    """For the workspace: link only to archive pages that exist."""
    return archive_service.is_public(digest)


@bp.get("/archive/")
def archive():
    return render_template("web/archive.html", digests=archive_service.public_digests())


@bp.get("/archive/<int:digest_id>")
def archive_issue(digest_id: int):
    """The issue in the site's frame (header, date, previous/next); the mail itself
    is framed from archive_issue_mail, since its inline styles need their own CSP."""
    digest = archive_service.public_digest(digest_id)
    if digest is None:
        abort(404)
    previous, following = archive_service.neighbours(digest)
    return page_showing_images(render_template(
        "web/archive_issue.html", digest=digest, previous=previous, following=following,
        body=Markup(archive_service.web_view_inline(digest))))  # sanitised by nh3


@bp.get("/archive/<int:digest_id>/mail")
def archive_issue_mail(digest_id: int):
    digest = archive_service.public_digest(digest_id)
    if digest is None:
        abort(404)
    return mail_document(archive_service.web_view_html(digest, current_language()),
                         framed_by_self=True)


@bp.get("/copy/<token>")
def web_copy(token: str):
    """"View in your browser" of a reader's copy: their sections, no login, nothing
    personal. Anything but a token we issued for a sent copy is a plain 404."""
    try:
        digest_id, variant_id = read_web_copy_token(token)
    except TokenInvalid:
        abort(404)
    html = archive_service.web_copy_html(digest_id, variant_id)
    if html is None:
        abort(404)
    response = mail_document(html)
    response.headers["X-Robots-Tag"] = "noindex"  # a personal copy is not for search engines
    return response


@bp.get("/archive/feed.atom")
def archive_feed():
    feed = atom.issues_feed(
        archive_service.public_digests(limit=FEED_LENGTH),
        title=f"{site_settings.current().site_name}: past issues",
        self_url=external_url("public.archive_feed"), alternate_url=external_url("public.archive"),
        subtitle=site_settings.current().site_description)
    return Response(feed, mimetype="application/atom+xml")


@bp.get("/branding/<accent>.css")
def branding_css(accent: str):
    """The accent colour as a stylesheet (the CSP allows no inline style). The colour
    is in the URL, so the file never changes and may be cached for good."""
    if not site_settings.ACCENT_COLOR.fullmatch("#" + accent):
        abort(404)
    response = Response(f":root {{ --accent:#{accent}; }}\n", mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/site/logo")
def site_logo():
    """The uploaded logo. Its URL carries the image's hash, so it may be cached for a
    long time; a stale URL still answers, and ETag lets caches check cheaply."""
    stored = site_logo_service.stored()
    if stored is None:
        abort(404)
    response = Response(stored.data, mimetype=stored.content_type)
    response.set_etag(stored.sha256)
    current = request.args.get("v") == stored.sha256[:16]
    response.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if current
                                         else "public, max-age=300")
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response.make_conditional(request)


@bp.get("/test-mail")
def test_mail():
    """Where the unsubscribe link of a test or preview mail leads."""
    return render_template("web/test_mail.html")


@bp.get("/articles/<slug>")
def article(slug: str):
    """Articles imported from files without a URL of their own live here."""
    found = archive_service.imported_article(slug)
    if found is None:
        abort(404)
    return render_template("web/article.html", article=found)
