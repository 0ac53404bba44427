"""Tracked links and the open pixel: judge, record, answer. No login, no cookies.

A link that is not ours (forged, altered, another key, an issue that is gone, a link
the issue does not have) is a plain 404 without a Location header: never a redirect
anyone could point elsewhere. A query string added to a tracked link is ignored and
never forwarded; the target is always the article's URL as the issue has it.
"""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, request

from newsletter.analytics import clicks, tracking
from newsletter.db import unit_of_work
from newsletter.extensions import csrf, limiter

bp = Blueprint("analytics", __name__)
csrf.exempt(bp)
limiter.exempt(bp)  # a flood is judged and bounded per token in Redis (analytics/clicks.py)

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
