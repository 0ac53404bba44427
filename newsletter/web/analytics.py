"""Tracked links and the open pixel: judge, record, answer. No login, no cookies.

A link that is not ours (forged, altered, another key, an issue that is gone, a link
the issue does not have) is a plain 404 without a Location header: never a redirect
anyone could point elsewhere. A query string added to a tracked link is ignored and
never forwarded; the target is always the article's URL as the issue has it.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from flask import Blueprint, Flask, Response, abort, request
from werkzeug.urls import iri_to_uri

from newsletter.analytics import clicks, tracking
from newsletter.db import unit_of_work
from newsletter.extensions import csrf, limiter
from newsletter.web.security import is_valid_host

bp = Blueprint("analytics", __name__)
csrf.exempt(bp)
limiter.exempt(bp)  # a flood is judged and bounded per token in Redis (analytics/clicks.py)

# Per process, a few hundred distinct values each (the site's hosts, the issues'
# article URLs): a click looks its answer up instead of working it out again.
_valid_host = lru_cache(maxsize=64)(is_valid_host)


@lru_cache(maxsize=4096)
def _location(url: str) -> str | None:
    location = iri_to_uri(url)
    return location if location.isprintable() else None


# A 1x1 transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _claims(link_token: str, copy_token: str):
    return tracking.signer().read(link_token, copy_token) or abort(404)


@bp.route("/r/<link_token>/<copy_token>", methods=["GET", "HEAD"])
def follow_link(link_token: str, copy_token: str):
    link, copy = _claims(link_token, copy_token)
    try:
        with unit_of_work():  # writes only when Redis is down (the click goes straight in)
            followed = clicks.follow(link, copy, request.method,
                                     request.headers.get("User-Agent"), request.remote_addr)
    except clicks.Unavailable:
        return Response("Try again in a moment.\n", 503, {"Retry-After": "5"},
                        mimetype="text/plain")
    if followed is None:
        abort(404)
    response = Response(status=302, headers={"Location": followed.url})
    response.headers["Cache-Control"] = "no-store"  # every click reaches us, once each
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/o/<link_token>/<copy_token>", methods=["GET", "HEAD"])
def open_pixel(link_token: str, copy_token: str):
    link, copy = _claims(link_token, copy_token)
    try:
        with unit_of_work():
            recorded = clicks.record_open(link, copy, request.method,
                                          request.headers.get("User-Agent"),
                                          request.remote_addr)
    except clicks.Unavailable:
        recorded = True  # the image is answered anyway; this open is not counted
    if not recorded:
        abort(404)
    return Response(PIXEL, 200, {"Cache-Control": "no-store"}, mimetype="image/gif")


class FastRedirect:
    """WSGI: a tracked link whose issue Redis knows is answered here, before Flask's
    request machinery (sessions, CSRF, limiter, security headers a redirect does not
    need): the token check, the verdict and the one Redis call are all a click costs.
    Anything else (a bad token, an issue not cached, Redis down, a bad Host) goes on to
    the Flask view, which answers it the slow, careful way."""

    def __init__(self, app: Flask, wsgi_app):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path.startswith("/r/") and method in ("GET", "HEAD") and _valid_host(
                environ.get("HTTP_HOST", "")):
            location = self._follow(path, method, environ)
            if location is not None:
                start_response("302 Found", [
                    ("Location", location), ("Content-Length", "0"),
                    ("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"),
                    ("X-Content-Type-Options", "nosniff")])
                return [b""]
        return self.wsgi_app(environ, start_response)

    def _follow(self, path: str, method: str, environ) -> str | None:
        tokens = path[3:].split("/")
        if len(tokens) != 2:
            return None
        with self.app.app_context():
            claims = tracking.signer().read(*tokens)
            if claims is None:
                return None
            try:
                followed = clicks.follow(*claims, method, environ.get("HTTP_USER_AGENT"),
                                         environ.get("REMOTE_ADDR"), cached_only=True)
            except clicks.NotCached:
                return None
        return None if followed is None else _location(followed.url)
