"""Small helpers shared by the blueprints."""

from flask import current_app, request

from newsletter.models import ConsentSource
from newsletter.services.subscriptions import Origin


def request_origin(source: ConsentSource) -> Origin:
    return Origin(source=source, ip_address=request.remote_addr,
                  user_agent=request.headers.get("User-Agent"))


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    accepted = request.accept_mimetypes
    return accepted["application/json"] > accepted["text/html"]


def subscribe_rate_limit() -> str:
    """Per-IP limit on subscribe requests (Flask-Limiter reads it per request)."""
    return current_app.config["SUBSCRIBE_RATE_LIMIT"]
