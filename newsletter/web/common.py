"""Small helpers shared by the blueprints."""

from flask import current_app, request

from newsletter.extensions import limiter
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


# One per-IP budget shared by every way to subscribe (form, API, resubscribe);
# the limit string is read per request so it can be configured.
subscribe_limit = limiter.shared_limit(
    lambda: current_app.config["SUBSCRIBE_RATE_LIMIT"], scope="subscribe",
    methods=["POST"])
