"""POST /webhooks/<provider>: bounces and complaints from sending providers.

Thin: the provider's proof (signature, credentials) is checked in
``newsletter/bounces/webhooks.py`` before anything in the body is believed.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from newsletter.bounces import webhooks
from newsletter.extensions import csrf, db

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # providers batch events, but never this many

# Providers post with no cookie and no CSRF token: their signature is the check.
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


@bp.post("/<provider>")
def receive(provider: str):
    if request.content_length is not None and request.content_length > MAX_BODY:
        return jsonify(error="body too large"), 413
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return jsonify(error="body too large"), 413
    try:
        results = webhooks.handle(provider, request.headers, body)
    except webhooks.Refused as error:
        db.session.rollback()
        log.warning("webhook %s refused: %s", provider[:20], error)
        return jsonify(error=str(error)), error.status
    except webhooks.BadPayload as error:
        db.session.rollback()
        log.warning("webhook %s: unreadable payload: %s", provider[:20], error)
        return jsonify(error=str(error)), 400
    except webhooks.Unavailable as error:
        db.session.rollback()
        log.warning("webhook %s: cannot check it now: %s", provider[:20], error)
        return jsonify(error=str(error)), 503
    db.session.commit()  # every event of the request, or (on an error) none: it retries
    return jsonify(recorded=results), 200
