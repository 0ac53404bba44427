"""Small helpers shared by the blueprints."""

import contextlib
import ipaddress
import logging
import time
from datetime import datetime
from functools import lru_cache, wraps
from zoneinfo import ZoneInfo

from flask import abort, current_app, g, has_request_context, render_template, request
from flask_babel import get_locale, gettext
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis import RedisError

from newsletter.extensions import db, limiter
from newsletter.issues import schedule
from newsletter.issues.schedule import parse_schedule
from newsletter.mail.tokens import TokenExpired, TokenInvalid
from newsletter.models import ConsentSource
from newsletter.readers import preferences as reader_preferences
from newsletter.readers import subscriptions, sunset
from newsletter.readers.subscriptions import LinkUsed, Origin
from newsletter.web.errors import log_refusal

log = logging.getLogger(__name__)


def request_origin(source: ConsentSource) -> Origin:
    return Origin(source=source, ip_address=request.remote_addr,
                  user_agent=request.headers.get("User-Agent"))


def select_locale() -> str:
    """The language of a page: ``?lang=``, else the reader's own on pages reached from
    their links, else the browser's Accept-Language, else the default. Editor pages
    stay English."""
    offered = current_app.config["LANGUAGES"]
    if not has_request_context():
        return offered[0]
    if request.blueprint == "admin":
        return "en"
    asked = request.args.get("lang")
    if asked in offered:
        return asked
    if g.get("reader_language") in offered:
        return g.reader_language
    return request.accept_languages.best_match(offered) or offered[0]


def remember_reader_language(endpoint: str | None, values: dict | None) -> None:
    """Pages reached from a reader's links (their token in the URL) follow their
    language: looked up before the view runs; a bad token is the view's to refuse."""
    values = values or {}
    with contextlib.suppress(TokenInvalid, LookupError):
        if endpoint in ("preferences.confirm_address", "preferences.confirm_address_post"):
            token = values.get("token")
            if isinstance(token, str):
                g.reader_language = reader_preferences.address_link_language(token)
            return
        if endpoint in ("preferences.keep", "preferences.keep_post"):
            token = values.get("token")
            if isinstance(token, str):
                g.reader_language = sunset.reader_for_keep_link(token).language
            return
        if endpoint in ("preferences.undo_address", "preferences.undo_address_post"):
            key = values.get("key")
            if isinstance(key, str):
                g.reader_language = reader_preferences.undo_link_language(key)
            return
        token = values.get("token")
        if not token or not isinstance(token, str):
            return
        lookup = (subscriptions.subscriber_for_confirm_token if endpoint == "public.confirm"
                  or endpoint == "public.confirm_post" else
                  subscriptions.subscriber_for_unsubscribe_token)
        reader = lookup(token)
        g.reader_language = reader.language
        db.session.expunge(reader)  # the view reads the reader afresh, as it always did


def reader_message(error: Exception) -> str:
    """A form error in the page's language: its catalogue form with its values when it
    keeps them (InvalidAddress), else its text (unchanged when not in the catalogue)."""
    message = getattr(error, "message", None)
    if isinstance(message, str):
        return gettext(message, **getattr(error, "values", {}))
    return gettext(str(error))


def current_language() -> str:
    """The page's language (its <html lang>)."""
    return str(get_locale() or current_app.config["LANGUAGES"][0])


def newsletter_zone() -> ZoneInfo:
    """The zone pages show times in: the newsletter's own (DIGEST_SCHEDULE's), the
    zone its editors plan issues in."""
    return parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone


def local_time(moment: datetime | None) -> str:
    """A stored (UTC) time as every page shows it: '28 Nov 2026 14:34 Europe/Berlin'.
    The Jinja filter ``local_time``."""
    return schedule.local_time(moment, newsletter_zone()) if moment else "—"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 subscriber', '6 subscribers'. The Jinja filter ``plural``."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


BAD_LINKS = {"confirm", "unsubscribe", "preferences", "change_address", "undo_address"}


def bad_link_page(error: TokenInvalid, link: str):
    """The page for a reader's link that does not work (400), with the next step that
    fits the ``link`` (one of BAD_LINKS): a confirmation link offers a new one; every
    other link the reader's own links by mail (manage, unsubscribe)."""
    if link not in BAD_LINKS:
        raise ValueError(f"no next step for a bad {link!r} link")
    log_refusal(400, f"bad {link} link: {error}")
    kind = ("expired" if isinstance(error, TokenExpired)
            else "used" if isinstance(error, LinkUsed) else "invalid")
    return render_template("web/bad_link.html", kind=kind, link=link, form={}), 400


def subscribe_limit(view):
    """One per-IP budget shared by every way to subscribe (form, API, resubscribe),
    spent by POSTs; the limit string is read per request so it can be configured."""
    @wraps(view)
    def limited(*args, **kwargs):
        if request.method == "POST" and not _spend_subscribe_budget(client_network()):
            abort(429)
        return view(*args, **kwargs)
    limited.spends_subscribe_budget = True
    return limited


@limiter.request_filter
def _limited_by_subscribe_budget() -> bool:
    """Flask-Limiter (the login limits) skips these views: they carry no limit of
    its own, and its per-request check costs as much as ours."""
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, "spends_subscribe_budget", False)


# Fixed windows, as Flask-Limiter's default strategy: one INCR per window, and the
# window's expiry set by its first request. Every window of the limit in one round
# trip (Flask-Limiter's decorator cost as much as the rest of a subscribe request).
_SPEND = """
local allowed = 1
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i - 1]) end
  if count > tonumber(ARGV[2 * i]) then allowed = 0 end
end
return allowed
"""
REDIS_RETRY_SECONDS = 5  # after a Redis failure, per-process counters for this long
_redis_failed_at = -REDIS_RETRY_SECONDS
_fallback = FixedWindowRateLimiter(MemoryStorage())


@lru_cache(maxsize=8)
def _parsed(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


def client_network() -> str:
    """Whom a per-IP limit counts: the IPv4 address, or the IPv6 /64 (one host
    commonly holds a whole /64, and could otherwise take a new address per request)."""
    address = request.remote_addr or ""
    if ":" in address:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return address


def _spend_subscribe_budget(ip: str) -> bool:
    """One hit of this address's budget; False once any window is spent. The counters
    live in the rate limiter's Redis under its key prefix (so ``limiter.reset()``
    clears them); Redis down falls back to per-process counters, never to a 500."""
    global _redis_failed_at
    limits = _parsed(current_app.config["SUBSCRIBE_RATE_LIMIT"])
    storage = limiter.storage
    if isinstance(storage, RedisStorage) and time.monotonic() - _redis_failed_at \
            > REDIS_RETRY_SECONDS:
        keys = [storage.prefixed_key(f"subscribe/{ip}/{item.amount}/{item.get_expiry()}")
                for item in limits]
        windows = [value for item in limits for value in (item.get_expiry(), item.amount)]
        client = storage.get_connection()
        script = current_app.extensions.get("subscribe_limit_script")
        if script is None or script.registered_client is not client:
            script = current_app.extensions["subscribe_limit_script"] = \
                client.register_script(_SPEND)
        try:
            return bool(script(keys, windows))
        except RedisError as error:
            log.warning("subscribe limit: Redis unreachable, per-process counters: %s", error)
            _redis_failed_at = time.monotonic()
    return all([_fallback.hit(item, "subscribe", ip) for item in limits])
