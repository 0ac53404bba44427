"""Login throttling per account: exponential backoff after failed tries.

Counted in Redis under a hash of the address as typed (normalised), for known and
unknown addresses alike, so the throttle's answers reveal nothing about which
editors exist. Per-network limits are Flask-Limiter's (see ``client_network``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time

import redis
from flask import current_app

log = logging.getLogger(__name__)

MAX_WAIT = 3600  # seconds: the backoff stops doubling at an hour
FORGET_AFTER = 24 * 3600


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
        extensions["login_throttle"] = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)
    return extensions["login_throttle"]


def _key(email: str) -> str:
    digest = hashlib.sha256(str(email).strip().lower().encode()).hexdigest()
    return f"{current_app.config['TASK_QUEUE']}:login-failures:{digest}"


def wait_seconds(email: str) -> int:
    """How long this account's next try must wait (0: it may try now)."""
    try:
        state = _redis().hgetall(_key(email))
    except redis.RedisError as error:  # the per-network limit still holds
        log.warning("login throttle unavailable: %s", error)
        return 0
    failures, last = int(state.get(b"count", 0)), float(state.get(b"last", 0))
    free = current_app.config["LOGIN_FREE_ATTEMPTS"]
    if failures < free:
        return 0
    delay = min(2 ** (failures - free), MAX_WAIT)
    return max(0, int(last + delay - time.time() + 0.999))


def record_failure(email: str) -> int:
    """Counts a failed try; returns the failures in a row so far (0 if unknown)."""
    key = _key(email)
    try:
        with _redis().pipeline() as pipe:
            pipe.hincrby(key, "count", 1).hset(key, "last", time.time())
            pipe.expire(key, FORGET_AFTER)
            failures = pipe.execute()[0]
    except redis.RedisError as error:
        log.warning("login throttle unavailable: %s", error)
        return 0
    return int(failures)


def reset(email: str) -> None:
    try:
        _redis().delete(_key(email))
    except redis.RedisError as error:
        log.warning("login throttle unavailable: %s", error)
