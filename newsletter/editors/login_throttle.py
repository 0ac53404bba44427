"""Login throttling: back off the one who guesses, never lock the owner out.

Who tries is a *guesser*: a known device (a signed cookie set after a successful
login, naming the address it logged in as), else the client network. Failures are
counted per account and per guesser, in Redis under a hash of the address as typed
(normalised), for known and unknown addresses alike, so the throttle's answers
reveal nothing about which editors exist. A guesser may fail LOGIN_FREE_ATTEMPTS
times; after that it waits as the account's failures say (1 s, 2 s, 4 s … an hour),
so many networks guessing at one account slow each other down, while the owner,
from another network or their own device, is never made to wait for them.
Per-network limits over all accounts are Flask-Limiter's (see ``client_network``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import time

import redis
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from newsletter import redis_connections

log = logging.getLogger(__name__)

MAX_WAIT = 3600  # seconds: the backoff stops doubling at an hour
FORGET_AFTER = 24 * 3600
DEVICE_COOKIE = "newsletter_device"
DEVICE_MAX_AGE = 180 * 24 * 3600  # a device not used to log in for this long is unknown again


def client_network(address: str | None) -> str:
    """The unit a login limit counts: an IPv4 address, or an IPv6 /64 (one
    subscriber line gets a whole /64, so per-address limits would be endless)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _redis() -> redis.Redis:
    extensions = current_app.extensions
    if "login_throttle" not in extensions:
        extensions["login_throttle"] = redis_connections.client(
            current_app.config, connect_timeout=1, timeout=1)
    return extensions["login_throttle"]


def _account(email: str) -> str:
    return hashlib.sha256(str(email).strip().lower().encode()).hexdigest()


def _key(email: str, guesser: str | None = None) -> str:
    key = f"{current_app.config['TASK_QUEUE']}:login-failures:{_account(email)}"
    if guesser is None:
        return key
    return f"{key}:{hashlib.sha256(guesser.encode()).hexdigest()[:32]}"


def _devices() -> URLSafeTimedSerializer:
    config = current_app.config  # signed with SECRET_KEY; fallbacks still accepted
    return URLSafeTimedSerializer([*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]],
                                  salt="editor-device")


def device_cookie(email: str) -> str:
    """A new known device for this address: the cookie's value."""
    return _devices().dumps({"a": _account(email)[:32], "d": secrets.token_hex(16)})


def guesser(email: str, client_address: str | None, cookie: str | None) -> str:
    """Who tries to log in as ``email``: a device that logged in as it before, else
    the client network. Decided from the request alone (no database), so it costs
    the same for known and unknown addresses."""
    if cookie:
        try:
            device = _devices().loads(cookie, max_age=DEVICE_MAX_AGE)
        except BadSignature:
            device = None
        if (isinstance(device, dict) and device.get("a") == _account(email)[:32]
                and isinstance(device.get("d"), str)):
            return "device:" + device["d"]
    return "network:" + client_network(client_address)


def wait_seconds(email: str, who: str) -> int:
    """How long this guesser's next try at this account must wait (0: it may try now)."""
    try:
        with _redis().pipeline() as pipe:
            pipe.hget(_key(email, who), "count").hgetall(_key(email))
            own, account = pipe.execute()
    except redis.RedisError as error:  # the per-network limit still holds
        log.warning("login throttle unavailable: %s", error)
        return 0
    free = current_app.config["LOGIN_FREE_ATTEMPTS"]
    if int(own or 0) < free:
        return 0
    failures, last = int(account.get(b"count", 0)), float(account.get(b"last", 0))
    delay = min(2 ** max(failures - free, 0), MAX_WAIT)
    return max(0, int(last + delay - time.time() + 0.999))


def record_failure(email: str, who: str) -> int:
    """Counts a failed try; returns the account's failures in a row so far (0 if
    the count is unavailable)."""
    account, own = _key(email), _key(email, who)
    try:
        with _redis().pipeline() as pipe:
            pipe.hincrby(account, "count", 1).hset(account, "last", time.time())
            pipe.expire(account, FORGET_AFTER)
            pipe.hincrby(own, "count", 1).expire(own, FORGET_AFTER)
            failures = pipe.execute()[0]
    except redis.RedisError as error:
        log.warning("login throttle unavailable: %s", error)
        return 0
    return int(failures)


def reset(email: str, who: str) -> None:
    """A good login clears its guesser's failures, not the account's: a network
    still guessing at the account keeps waiting."""
    try:
        _redis().delete(_key(email, who))
    except redis.RedisError as error:
        log.warning("login throttle unavailable: %s", error)
