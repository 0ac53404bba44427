"""JSON API, version 1."""

from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request, url_for

from newsletter.content import articles, topics
from newsletter.content.article_files import parse_date
from newsletter.content.articles import ArticleInput, InvalidArticle
from newsletter.content.topics import TopicError
from newsletter.db import unit_of_work
from newsletter.editors import accounts, audit
from newsletter.extensions import csrf, db
from newsletter.issues import copies, digests, reports
from newsletter.mail.addresses import InvalidAddress
from newsletter.mail.tokens import TokenInvalid
from newsletter.models import ArticleSource, ConsentSource, SubscriberStatus
from newsletter.readers import preferences, segments, subscriptions
from newsletter.sequences import reports as sequence_reports
from newsletter.web.common import request_origin, subscribe_limit
from newsletter.web.errors import error_response
from newsletter.webhooks import endpoints as webhook_endpoints

# JSON bodies cannot be sent cross-site without a CORS preflight, so the API
# needs no CSRF token; browsers are admitted per NEWSLETTER_CORS_ORIGINS.
bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
PUBLIC = "public"


def public(view):
    view.required_scope = PUBLIC
    return view


@bp.before_request
def every_endpoint_declares_its_scope():
    """Deny by default: an endpoint that names neither a scope nor PUBLIC is refused."""
    view = current_app.view_functions.get(request.endpoint)
    if view is not None and getattr(view, "required_scope", None) is None:
        return error_response(403, "This endpoint declares no scope, so no token may use it.")
    return None


def _token_actor(check: accounts.TokenCheck) -> audit.Actor:
    token = check.token
    return audit.Actor(token.editor_id if token else None,
                       token.editor.email if token else "unknown token",
                       request.remote_addr, token.id if token else None)


def requires_scope(scope: str):
    """The view runs only for a live, unexpired token holding ``scope`` (whose editor's
    role still allows it); ``g.actor`` then says who acts, for the audit log."""
    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return error_response(401, "Send an API token as "
                                           "'Authorization: Bearer <token>'.")
            check = accounts.check_token(token.strip(), scope, request.remote_addr)
            db.session.commit()  # when and from where the token was used, whatever follows
            if check.token is None:
                return error_response(401, "Unknown or revoked API token.")
            if check.problem:
                audit.record(_token_actor(check), "api", outcome="denied",
                             target=request.endpoint, detail=check.problem)
                db.session.commit()  # the refusal is recorded
                if check.missing_scope:
                    return jsonify(error=f"This token lacks the scope {scope}.", status=403,
                                   missing_scope=scope), 403
                return error_response(401, "This API token has expired.")
            g.actor = _token_actor(check)
            return view(*args, **kwargs)

        checked.required_scope = scope
        return checked
    return decorate


@bp.post("/subscriptions")
@public
@subscribe_limit
def create_subscription():
    payload, bad = _json_object()
    if bad:
        return bad
    if "email" not in payload:
        return error_response(400, 'The field "email" is required.')
    try:
        subscriptions.subscribe(payload["email"], payload.get("name"),
                                request_origin(ConsentSource.API),
                                topics=payload.get("topics"), cadence=payload.get("cadence"),
                                timezone=payload.get("timezone"),
                                language=payload.get("language"))
    except (InvalidAddress, TopicError) as error:
        return error_response(400, str(error))
    # The same answer whatever the address's state, so nobody learns who subscribed.
    config = current_app.config
    return jsonify(status="accepted", message=(
        "If this address can subscribe, a confirmation mail is on its way, unless one was "
        f"sent to it in the last {config['CONFIRM_MAIL_INTERVAL']} seconds (at most "
        f"{config['CONFIRM_MAILS_PER_DAY']} a day).")), 202


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
@requires_scope("articles:write")
def create_article():
    """For a CMS webhook: {"title", "url", "summary", "body_html" or "body_markdown",
    "author", "categories": [...], "published_at": ISO 8601, "guid", "language"}.
    Markdown is rendered and sanitised as the editor's is; "language" (one of
    NEWSLETTER_LANGUAGES): only its readers get the article."""
    payload, bad = _json_object()
    if bad:
        return bad
    try:
        categories = payload.get("categories") or []
        if not isinstance(categories, list):
            raise InvalidArticle('"categories" must be a list of strings.')
        body_markdown = payload.get("body_markdown")
        if body_markdown is not None and not isinstance(body_markdown, str):
            raise InvalidArticle('"body_markdown" must be a string.')
        if body_markdown is not None and payload.get("body_html"):
            raise InvalidArticle('Send "body_html" or "body_markdown", not both.')
        data = ArticleInput(
            title=str(payload.get("title") or ""), url=str(payload.get("url") or ""),
            summary=str(payload.get("summary") or ""),
            body_html=str(payload.get("body_html") or ""),
            body_markdown=body_markdown,
            author=payload.get("author") and str(payload["author"]),
            categories=[str(c) for c in categories],
            published_at=parse_date(payload.get("published_at") and str(payload["published_at"])),
            guid=payload.get("guid") and str(payload["guid"]),
            language=payload.get("language") and str(payload["language"]),
        )
        article, created = articles.add_article(data, ArticleSource.API)
    except InvalidArticle as error:
        return error_response(400, str(error))
    audit.record(g.actor, "article_save", target=f"article {article.id}", detail="api")
    db.session.commit()  # the article and its audit record together
    return jsonify(id=article.id, url=article.url, created=created), 201 if created else 200


@bp.post("/issues")
@requires_scope("issues:send")
def create_issue():
    """Compose and send an issue of everything new: {"subject"?: ..., "intro"?: ...,
    "segment"?: NAME, "segment_only"?: bool}."""
    payload, bad = _json_object() if request.content_length else ({}, None)
    if bad:
        return bad
    subject, intro = payload.get("subject"), payload.get("intro") or ""
    if (subject is not None and not isinstance(subject, str)) or not isinstance(intro, str):
        return error_response(400, '"subject" and "intro" must be strings.')
    segment_name, segment_only = payload.get("segment"), payload.get("segment_only", False)
    try:
        translations = copies.check_translations(payload.get("translations"))
    except copies.TranslationError as error:
        return error_response(400, str(error))
    if segment_name is not None and not isinstance(segment_name, str):
        return error_response(400, '"segment" must be a segment\'s name.')
    if not isinstance(segment_only, bool):
        return error_response(400, '"segment_only" must be true or false.')
    try:
        with unit_of_work():
            segment = segments.find(segment_name) if segment_name is not None else None
            digest = digests.send_now(subject=subject, intro=intro, segment=segment,
                                      segment_only=segment_only, translations=translations)
            if digest is not None:
                audit.record(g.actor, "send", target=f"digest {digest.id}",
                             detail=f"{digest.recipients} recipient(s); api"
                             + (f"; segment {segment.name}" if segment else ""))
    except segments.SegmentError as error:
        return error_response(400, str(error))
    if digest is None:
        return jsonify(status="nothing-new",
                       message="There are no new articles since the last issue."), 200
    return jsonify(id=digest.id, status=digest.status.value, recipients=digest.recipients,
                   archive_url=url_for("public.archive_issue", digest_id=digest.id,
                                       _external=True)), 201


@bp.get("/segments")
@requires_scope("issues:send")  # what a sender needs to choose one; no reader data
def list_segments():
    """Every segment with its conditions and its active readers now."""
    found = []
    for segment in segments.all_segments():
        try:
            readers = segments.segment_count(segment)
        except segments.SegmentError:
            readers = None  # e.g. its topic was deleted: a send to it is refused
        found.append({"name": segment.name, "conditions": segment.conditions,
                      "readers": readers})
    return jsonify(segments=found)


@bp.post("/segments")
@requires_scope("issues:send")
def create_segment():
    """{"name": ..., "conditions": [{"field", "op", "value", "key"?}, ...]} (ANDed)."""
    payload, bad = _json_object()
    if bad:
        return bad
    try:
        with unit_of_work():
            segment = segments.create(payload.get("name"), payload.get("conditions"))
            readers = segments.segment_count(segment)
            audit.record(g.actor, "segment_create", target=f"segment {segment.id}",
                         detail=f"{segment.name}; api"[:500])
    except segments.SegmentError as error:
        return error_response(400, str(error))
    return jsonify(name=segment.name, conditions=segment.conditions, readers=readers), 201


def _subscriber_json(subscriber) -> dict:
    return {"id": subscriber.id, "email": subscriber.email, "name": subscriber.name,
            "status": subscriber.status.value,
            "created_at": subscriber.created_at.isoformat(),
            "confirmed_at": subscriber.confirmed_at and subscriber.confirmed_at.isoformat()}


@bp.get("/subscribers")
@requires_scope("subscribers:read")
def list_subscribers():
    """A page of subscribers, newest first: ?status=active&page=2."""
    status, page = request.args.get("status", ""), request.args.get("page", "1")
    if status and status not in {s.value for s in SubscriberStatus}:
        return error_response(400, '"status" is one of ' +
                              ", ".join(s.value for s in SubscriberStatus) + ".")
    page_number = int(page) if page.isdigit() and len(page) < 7 else 1
    found = [_subscriber_json(s) for s in reports.search_subscribers("", status, page_number)]
    # Built before the commit, which would expire every row and reload each one.
    audit.record(g.actor, "export", target="subscribers", detail=f"api page {page_number}")
    db.session.commit()
    return jsonify(subscribers=found, page=page_number, page_size=reports.PAGE_SIZE)


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@requires_scope("subscribers:write")
def unsubscribe_subscriber(subscriber_id: int):
    try:
        with unit_of_work():
            subscriber = subscriptions.unsubscribe_subscriber(subscriber_id,
                                                              request_origin(ConsentSource.API))
            audit.record(g.actor, "unsubscribe", target=f"subscriber {subscriber_id}",
                         detail="api")
    except TokenInvalid:
        return error_response(404, "No such subscriber.")
    return jsonify(id=subscriber.id, status=subscriber.status.value)


@bp.get("/topics")
@public
def list_topics():
    """The topics a reader can choose (as on the subscribe form), in their order."""
    return jsonify(topics=[{"slug": topic.slug, "name": topic.name,
                            "description": topic.description}
                           for topic in topics.list_topics()])


@bp.get("/subscribers/<int:subscriber_id>/preferences")
@requires_scope("subscribers:read")
def get_preferences(subscriber_id: int):
    try:
        subscriber = preferences.reader_by_id(subscriber_id)
    except LookupError:
        return error_response(404, "No such subscriber.")
    answer = preferences.preferences_of(subscriber)
    audit.record(g.actor, "export", target=f"subscriber {subscriber_id}",
                 detail="api preferences")
    db.session.commit()
    return jsonify(answer)


@bp.put("/subscribers/<int:subscriber_id>/preferences")
@requires_scope("subscribers:write")
def put_preferences(subscriber_id: int):
    """Change any of {"topics": [slugs], "cadence", "name", "pause_weeks"}."""
    payload, bad = _json_object()
    if bad:
        return bad
    try:
        with unit_of_work():
            subscriber = preferences.set_preferences(subscriber_id, payload,
                                                     request_origin(ConsentSource.API))
            audit.record(g.actor, "preferences", target=f"subscriber {subscriber_id}",
                         detail="api: " + ", ".join(sorted(payload)))
    except LookupError:
        return error_response(404, "No such subscriber.")
    except preferences.NotSubscribed as error:
        return error_response(409, str(error))
    except preferences.PreferenceError as error:
        return error_response(400, str(error))
    return jsonify(preferences.preferences_of(subscriber))


@bp.get("/sequences")
@requires_scope("sequences:read")
def list_sequences():
    """Every sequence, its readers by state and each step's sent, failed and waiting."""
    return jsonify(sequences=[{
        "id": summary.id, "name": summary.name, "topic": summary.topic,
        "created": summary.created_at.isoformat(), "readers": summary.readers,
        "steps": [{"id": step.id, "position": step.position,
                   "after_seconds": step.delay_seconds, "subject": step.subject,
                   "sent": step.sent, "failed": step.failed, "skipped": step.skipped,
                   "waiting": step.waiting} for step in summary.steps],
    } for summary in sequence_reports.summaries()])


def _webhook_json(endpoint) -> dict:
    return {"id": endpoint.id, "url": endpoint.url, "events": endpoint.events,
            "enabled": endpoint.disabled_at is None,
            "disabled_reason": endpoint.disabled_reason,
            "created_at": endpoint.created_at.isoformat()}


@bp.get("/webhooks")
@requires_scope("webhooks:read")
def list_webhooks():
    return jsonify(webhooks=[_webhook_json(endpoint) for endpoint in webhook_endpoints.list_all()])


@bp.post("/webhooks")
@requires_scope("webhooks:write")
def create_webhook():
    """{"url", "events": [...], "secret" (optional, at least 16 bytes)}; the answer holds
    the secret only when it was generated."""
    payload, bad = _json_object()
    if bad:
        return bad
    try:
        with unit_of_work():
            endpoint, generated = webhook_endpoints.add(
                payload.get("url") if isinstance(payload.get("url"), str) else "",
                payload.get("events", []), payload.get("secret"))
            audit.record(g.actor, "webhook_add", target=f"webhook {endpoint.id}",
                         detail=endpoint.url)
    except webhook_endpoints.WebhookError as error:
        return error_response(400, str(error))
    body = _webhook_json(endpoint)
    if generated:
        body["secret"] = generated
    return jsonify(body), 201
