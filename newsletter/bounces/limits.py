"""What strangers may make the bounce side remember, counted in Redis.

- The bounce receiver's caps on mail without a VERP token (anyone can send it):
  per client (IPv4 address or IPv6 /64, which the sender cannot vary) and for
  all clients together, per UTC day.
- Webhook request tokens seen (Mailgun signs only a timestamp and a token, not
  the body): each is accepted once, and marked before anything in it is acted on.
"""

from __future__ import annotations

import enum
import hashlib
import time

import redis
from flask import current_app

from newsletter import redis_connections
from newsletter.editors.login_throttle import client_network


class Unavailable(Exception):
    """Redis cannot be reached: the caller refuses for now (the sender retries)."""


class Refusal(enum.Enum):
    CLIENT = "client"  # this client's daily share is used up
    DAILY = "daily"  # everyone's daily share is used up


# Refusals are not counted, so a client over its limit does not use up everyone's.
_COUNT_TOKENLESS = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 1 end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 2 end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[3])
end
return 0
"""
_DAY = 24 * 3600


def _redis() -> redis.Redis:
    extensions = current_app.extensions
    if "bounce_limits" not in extensions:
        extensions["bounce_limits"] = redis_connections.client(
            current_app.config, connect_timeout=1, timeout=2)
    return extensions["bounce_limits"]


def _prefix() -> str:
    return f"{current_app.config['TASK_QUEUE']}:bounce-limits"


def count_tokenless(client_address: str | None) -> Refusal | None:
    """Count one tokenless mail from this client; a Refusal when it is over a cap."""
    config = current_app.config
    day = time.strftime("%Y%m%d", time.gmtime())
    keys = [f"{_prefix()}:client:{day}:{client_network(client_address)}",
            f"{_prefix()}:all:{day}"]
    try:
        verdict = _redis().eval(_COUNT_TOKENLESS, 2, *keys,
                                config["BOUNCE_TOKENLESS_PER_CLIENT_PER_DAY"],
                                config["BOUNCE_TOKENLESS_PER_DAY"], 2 * _DAY)
    except redis.RedisError as error:
        raise Unavailable(str(error)) from None
    return {0: None, 1: Refusal.CLIENT, 2: Refusal.DAILY}[int(verdict)]


def first_use(provider: str, token: str, within: int) -> bool:
    """Mark a signed request's token used; False when it was used before. Remembered for
    ``within`` seconds: older requests are refused as stale anyway."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    try:
        return bool(_redis().set(f"{_prefix()}:webhook-token:{provider}:{digest}", 1,
                                 nx=True, ex=within))
    except redis.RedisError as error:
        raise Unavailable(str(error)) from None
