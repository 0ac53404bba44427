"""JSON API, version 1."""

from flask import Blueprint, jsonify, request

from newsletter.extensions import csrf
from newsletter.mail.addresses import InvalidAddress
from newsletter.models import ConsentSource
from newsletter.services import subscriptions
from newsletter.web.common import request_origin, subscribe_limit
from newsletter.web.errors import error_response

# JSON bodies cannot be sent cross-site without a CORS preflight, so the API
# needs no CSRF token; browsers are admitted per NEWSLETTER_CORS_ORIGINS.
bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.post("/subscriptions")
@subscribe_limit
def create_subscription():
    if not request.is_json:
        return error_response(415)
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return error_response(400, "The body must be a JSON object such as "
                                   '{"email": "reader@example.com", "name": "Ada"}.')
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
