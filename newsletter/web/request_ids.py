"""A per-request id: in every log line of the request (``LOG_FORMAT=json``) and in the
``X-Request-ID`` response header, so a reader's complaint can be found in the logs.

A proxy's own ``X-Request-ID`` is kept when it looks like an id (letters, digits,
``.``, ``_``, ``-``, at most 64), so one id follows a request through both logs; any
other value is replaced, never logged."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

HEADER = "X-Request-ID"
_LOOKS_LIKE_AN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def init_app(app: Flask) -> None:
    app.before_request(_assign)
    app.after_request(_answer)


def _assign() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = given if _LOOKS_LIKE_AN_ID.fullmatch(given) else uuid.uuid4().hex


def _answer(response):
    request_id = g.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
    return response
