"""JSON API, version 1."""

from flask import Blueprint, current_app, jsonify, request, url_for

from newsletter.extensions import csrf
from newsletter.mail.addresses import InvalidAddress
from newsletter.models import ArticleSource, ConsentSource
from newsletter.services import articles, digests, editors, subscriptions
from newsletter.services.article_files import parse_date
from newsletter.services.articles import ArticleInput, InvalidArticle
from newsletter.web.common import request_origin, subscribe_limit
from newsletter.web.errors import error_response

# JSON bodies cannot be sent cross-site without a CORS preflight, so the API
# needs no CSRF token; browsers are admitted per NEWSLETTER_CORS_ORIGINS.
bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.post("/subscriptions")
@subscribe_limit
def create_subscription():
    payload, bad = _json_object()
    if bad:
        return bad
    if "email" not in payload:
        return error_response(400, 'The field "email" is required.')
    try:
        subscriptions.subscribe(payload["email"], payload.get("name"),
                                request_origin(ConsentSource.API))
    except InvalidAddress as error:
        return error_response(400, str(error))
    # The same answer whatever the address's state, so nobody learns who subscribed.
    return jsonify(status="accepted",
                   message="If this address can subscribe, a confirmation mail is on its way."), 202


def _editor_or_401():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    editor = editors.editor_for_token(token.strip()) if scheme.lower() == "bearer" else None
    if editor is None:
        return None, error_response(401, "Send an editor's API token as "
                                         "'Authorization: Bearer <token>'.")
    return editor, None


def _json_object():
    if not request.is_json:
        return None, error_response(415)
    try:  # the app's JSON provider bounds depth and refuses NUL; say which rule broke
        payload = current_app.json.loads(request.get_data(cache=True))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, error_response(400, f"The body is not acceptable JSON: {error}"[:300])
    if not isinstance(payload, dict):
        return None, error_response(400, "The body must be a JSON object.")
    return payload, None


@bp.post("/articles")
def create_article():
    """For a CMS webhook: {"title", "url", "summary", "body_html", "author",
    "categories": [...], "published_at": ISO 8601, "guid"}."""
    _, denied = _editor_or_401()
    if denied:
        return denied
    payload, bad = _json_object()
    if bad:
        return bad
    try:
        categories = payload.get("categories") or []
        if not isinstance(categories, list):
            raise InvalidArticle('"categories" must be a list of strings.')
        data = ArticleInput(
            title=str(payload.get("title") or ""), url=str(payload.get("url") or ""),
            summary=str(payload.get("summary") or ""),
            body_html=str(payload.get("body_html") or ""),
            author=payload.get("author") and str(payload["author"]),
            categories=[str(c) for c in categories],
            published_at=parse_date(payload.get("published_at") and str(payload["published_at"])),
            guid=payload.get("guid") and str(payload["guid"]),
        )
        article, created = articles.add_article(data, ArticleSource.API)
    except InvalidArticle as error:
        return error_response(400, str(error))
    return jsonify(id=article.id, url=article.url, created=created), 201 if created else 200


@bp.post("/issues")
def create_issue():
    """Compose and send an issue of everything new: {"subject"?: ..., "intro"?: ...}."""
    _, denied = _editor_or_401()
    if denied:
        return denied
    payload, bad = _json_object() if request.content_length else ({}, None)
    if bad:
        return bad
    subject, intro = payload.get("subject"), payload.get("intro") or ""
    if (subject is not None and not isinstance(subject, str)) or not isinstance(intro, str):
        return error_response(400, '"subject" and "intro" must be strings.')
    digest = digests.send_now(subject=subject, intro=intro)
    if digest is None:
        return jsonify(status="nothing-new",
                       message="There are no new articles since the last issue."), 200
    return jsonify(id=digest.id, status=digest.status.value, recipients=digest.recipients,
                   archive_url=url_for("public.archive_issue", digest_id=digest.id,
                                       _external=True)), 201
