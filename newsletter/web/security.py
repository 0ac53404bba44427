"""The web edge's defences that hold for every route, present and future.

- the Host header is a host name or IP address (a label over 63 characters or a
  broken IDNA label made werkzeug fail while building URLs): otherwise a 400;
- ids in URLs are bounded to the database's integer range (a bigger one is a 404,
  not an overflow error from the database);
- request bodies are capped per route before anything reads them: small for
  everyone, larger only for logged-in editors;
- JSON is bounded in depth, holds no NUL and no lone surrogate (neither can be
  stored), and never raises anything but a 400;
- every response carries security headers: a Content-Security-Policy with no
  inline script, frame-ancestors 'none' (the embeddable form: EMBED_ORIGINS),
  nosniff, Referrer-Policy, HSTS under https, and no-store where a page can show
  a token or personal data.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from flask_login import current_user
from werkzeug.routing import IntegerConverter, PathConverter, UnicodeConverter

from newsletter.mail.language import N_

MAX_ID = 2**31 - 1  # PostgreSQL INTEGER; SQLite's range is larger

PUBLIC_BODY_LIMIT = 16 * 1024  # anyone: forms, the JSON API
EDITOR_BODY_LIMIT = 1024 * 1024  # logged-in editors' forms (article bodies), token-holders' API
UPLOAD_BODY_LIMIT = 100 * 1024 * 1024  # the editor's CSV upload: a million rows is ~40 MB
EDITOR_API_ENDPOINTS = {"api.create_article", "api.create_issue"}  # authenticated in the view
UPLOAD_ENDPOINTS = {"admin.import_subscribers"}

MAX_JSON_DEPTH = 32
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

# Pages anyone may cache: they show neither tokens nor personal data.
CACHEABLE_ENDPOINTS = {"static", "public.archive", "public.archive_issue",
                       "public.archive_issue_mail", "public.archive_feed", "public.article"}
EMBEDDABLE_ENDPOINTS = {"public.subscribe", "public.subscribe_thanks"}  # with ?embed=1

PAGE_POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-src": "'self'",  # the sandboxed mail previews
    "form-action": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
# A mail's HTML shown as a page (archive, previews): its CSS is inlined into style
# attributes, as mail clients need, so styles must be allowed inline; no script at
# all, and the document is sandboxed.
MAIL_POLICY = {
    "default-src": "'none'",
    "style-src": "'unsafe-inline'",
    "img-src": "https: http: data:",
    "form-action": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "sandbox": "allow-popups allow-popups-to-escape-sandbox "
               "allow-top-navigation-by-user-activation",
}

# The article form's preview document: the sanitised body as it will look, with the
# images it links (https only); nothing else of the workspace loosens its policy.
ARTICLE_PREVIEW_POLICY = {
    "default-src": "'none'",
    "style-src": "'unsafe-inline'",
    "img-src": "'self' https: data:",
    "form-action": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'self'",
    "sandbox": "allow-popups allow-popups-to-escape-sandbox",
}


HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]*)(:(?P<port>[0-9]{1,5}))?")
BAD_HOST = "newsletter.bad_host"  # WSGI environ key: the Host header was refused
SURROGATE = re.compile("[\ud800-\udfff]")


def is_valid_host(value: str) -> bool:
    """A Host header werkzeug can turn into URLs: a DNS name (ASCII labels of 1..63
    characters, 253 in all, A-labels that decode), an IPv4 address or a bracketed
    IPv6 one, and an optional port up to 65535."""
    match = HOST_PORT.fullmatch(value)
    if match is None or (match["port"] and int(match["port"]) > 65535):
        return False
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    name = host[:-1] if host.endswith(".") else host
    if not 0 < len(name) <= 253 or not name.isascii():
        return False
    for label in name.split("."):
        if not HOST_LABEL.fullmatch(label):
            return False
        if label[:4].lower() == "xn--":
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                return False
    return True


class HostCheck:
    """WSGI middleware: a request whose Host header is not a host name gets the
    configured site's host in its place (so Flask can build its URL adapter and
    our error page) and is then refused with a 400 by ``_refuse_bad_host``."""

    def __init__(self, wsgi_app, fallback_host: str):
        self.wsgi_app = wsgi_app
        self.fallback_host = fallback_host

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST")
        if host is not None and not is_valid_host(host):
            environ["HTTP_HOST"] = self.fallback_host
            environ[BAD_HOST] = True
        return self.wsgi_app(environ, start_response)


def _refuse_bad_host() -> None:
    if request.environ.get(BAD_HOST):
        abort(400, N_("The Host header is not a valid host name."))


def policy_header(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in policy.items())


class IdConverter(IntegerConverter):
    """``<int:...>`` for database ids: 1 .. 2**31-1, ASCII digits only (werkzeug's
    ``\\d`` also matches "１２"); anything else is a 404."""

    regex = r"[0-9]+"

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


class SegmentConverter(UnicodeConverter):
    """The default ``<name>`` converter without control characters: a NUL reaching
    PostgreSQL is an error there, and no slug or token of ours holds one. At most
    500 characters (tokens are far shorter)."""

    def __init__(self, map, minlength: int = 1, maxlength: int | None = 500,
                 length: int | None = None) -> None:
        super().__init__(map, minlength, maxlength, length)
        self.regex = self.regex.replace("[^/]", "[^/\\x00-\\x1f\\x7f]")


class SafePathConverter(PathConverter):
    regex = "[^/\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*?"


class BoundedJSONProvider(DefaultJSONProvider):
    """json.loads that turns absurd nesting into a ValueError (so a 400), never a
    RecursionError (a 500). Sizes are bounded before this by the body caps."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        problem = _json_problem(value, MAX_JSON_DEPTH)
        if problem:
            raise ValueError(problem)
        return value


def _json_problem(value: Any, limit: int) -> str | None:
    """Too deep, or a NUL or a lone surrogate ("\\ud800") in a string: PostgreSQL
    refuses NUL in text, and a lone surrogate cannot be encoded as UTF-8 at all."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "JSON string holds a NUL character"
            if SURROGATE.search(item):
                return "JSON string holds a lone surrogate (not a Unicode character)"
            continue
        if isinstance(item, dict):
            item = [*item.keys(), *item.values()]
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return f"JSON nested deeper than {limit} levels"
        stack.extend((child, depth + 1) for child in item)
    return None


def _body_limit() -> None:
    """Before anything reads the body (CSRF checks read forms): pick this route's cap."""
    endpoint = request.endpoint or ""
    if endpoint in EDITOR_API_ENDPOINTS:
        request.max_content_length = EDITOR_BODY_LIMIT
    elif endpoint.startswith("admin.") and current_user.is_authenticated:
        request.max_content_length = (UPLOAD_BODY_LIMIT if endpoint in UPLOAD_ENDPOINTS
                                      else EDITOR_BODY_LIMIT)
    else:
        request.max_content_length = PUBLIC_BODY_LIMIT
    # NUL is in no legitimate value of ours, and PostgreSQL refuses it in text.
    if b"%00" in request.query_string or b"\x00" in request.query_string or (
            request.mimetype in FORM_TYPES
            and any("\x00" in key + value for key, value in request.form.items(multi=True))):
        abort(400, N_("The request holds a NUL character."))


def _security_headers(response: Response) -> Response:
    headers = response.headers
    embeddable = (request.endpoint in EMBEDDABLE_ENDPOINTS
                  and request.args.get("embed") == "1")
    if "Content-Security-Policy" not in headers:
        policy = dict(PAGE_POLICY)
        branding = g.get("branding")  # set when the page showed the site's branding
        if branding is not None and branding.logo_origin:
            policy["img-src"] += " " + branding.logo_origin
        if embeddable:
            policy["frame-ancestors"] = " ".join(current_app.config["EMBED_ORIGINS"])
        headers["Content-Security-Policy"] = policy_header(policy)
    if not embeddable and "X-Frame-Options" not in headers:
        # For browsers without frame-ancestors.
        headers["X-Frame-Options"] = (
            "SAMEORIGIN" if "frame-ancestors 'self'" in headers["Content-Security-Policy"]
            else "DENY")
    headers["X-Content-Type-Options"] = "nosniff"
    # Never send a URL holding a token (confirm, unsubscribe) to another site.
    headers["Referrer-Policy"] = "same-origin"
    if current_app.config["BASE_URL"].startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.endpoint not in CACHEABLE_ENDPOINTS and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    elif request.endpoint != "static" and len(current_app.config["LANGUAGES"]) > 1:
        response.vary.add("Accept-Language")  # a cached page is in the asker's language
    return response


def mail_document(html: str, *, framed_by_self: bool = False) -> Response:
    """A mail's HTML as a page of its own: inline styles, no script, sandboxed."""
    policy = dict(MAIL_POLICY)
    if framed_by_self:
        policy["frame-ancestors"] = "'self'"
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy_header(policy)
    return response


def page_showing_images(html: str) -> Response:
    """A page of ours that also shows https images (the articles' images in an archive
    issue): the page policy with only img-src widened."""
    policy = dict(PAGE_POLICY)
    policy["img-src"] += " https:"
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy_header(policy)
    return response


def article_preview_document(html: str, status: int = 200) -> Response:
    """A sanitised article body as a sandboxed page of its own, under the preview policy."""
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy_header(ARTICLE_PREVIEW_POLICY)
    return response


def init_app(app: Flask) -> None:
    """Call before the extensions that read request bodies (CSRF) are initialised."""
    # Every route, including new ones: ids in range, no control characters in segments.
    app.url_map.converters.update(int=IdConverter, default=SegmentConverter,
                                  string=SegmentConverter, path=SafePathConverter)
    app.json = BoundedJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = PUBLIC_BODY_LIMIT
    # Inside ProxyFix (wrapped later), so a forwarded Host is checked too.
    app.wsgi_app = HostCheck(app.wsgi_app, urlsplit(app.config["BASE_URL"]).netloc)
    app.before_request(_refuse_bad_host)
    app.before_request(_body_limit)
    app.after_request(_security_headers)
