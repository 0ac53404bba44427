"""What the workers share about the relay through Redis: the send rate cap, per-domain
backoff, and the circuit breaker's count of connection failures.

A 4xx is about the scope it names: a busy, full or greylisting mailbox defers that
reader only; the domain backs off on a reply about the domain (421, or a 4.7.x rate
or policy reply) or when several different readers of it answer 4xx within the
backoff window."""

from __future__ import annotations

import contextlib
import logging
import time

import redis
from flask import current_app

log = logging.getLogger(__name__)

_redis_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    """One client (and connection pool) per worker process, not one per batch."""
    url = current_app.config["REDIS_URL"]
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=2,
                                                   socket_timeout=5)
    return _redis_clients[url]


# Reserves the next send slot of a shared limiter (GCRA: one "theoretical arrival
# time" in Redis, on Redis's clock) and returns how long to wait for it. Fractional
# rates are exact (1.5/s is one message every 2/3 s) and the wait is never negative.
_RESERVE_SLOT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < t then slot = t end
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval),
           'PX', math.ceil((slot + interval - t) * 1000) + 1000)
return string.format('%.6f', slot - t)
"""


class SendRate:
    """A cap on messages per second across every worker, shared through Redis."""

    KEY = "newsletter:send-rate"

    def __init__(self, rate: float | None, client: redis.Redis | None = None):
        self.rate = rate
        if rate:
            self.redis = client or redis_client()
            self.reserve = self.redis.register_script(_RESERVE_SLOT)

    def delay(self) -> float:
        """Reserve a slot; seconds until it (0 when uncapped)."""
        if not self.rate:
            return 0.0
        return max(0.0, float(self.reserve(keys=[self.KEY], args=[1 / self.rate])))

    def wait(self) -> None:
        delay = self.delay()
        if delay > 0:
            time.sleep(delay)


OPEN_KEY = "newsletter:relay-open:"  # + relay name: set while its circuit is open


def open_relays(names: list[str], client: redis.Redis | None = None) -> set[str]:
    """The relays whose circuit breaker keeps them out of sends now (one round trip)."""
    if not names:
        return set()
    found = (client or redis_client()).mget([OPEN_KEY + name for name in names])
    return {name for name, value in zip(names, found, strict=True) if value is not None}


def about_the_domain(code: int | None, enhanced: str | None) -> bool:
    """A 4xx that speaks for the whole domain (or the relay's path to it): 421 closes
    the connection, 4.7.x is a rate limit or policy; other 4xx speak for one mailbox."""
    return code == 421 or (enhanced or "").startswith("4.7.")


class Relay:
    """What the workers share about the relay through Redis: per-domain backoff, the
    readers of each domain that lately answered 4xx, and a count of consecutive
    connection failures (the circuit breaker)."""

    BACKOFF_KEY = "newsletter:domain-backoff:"
    STRIKES_KEY = "newsletter:domain-4xx:"  # reader -> when, per domain

    def __init__(self, digest_id: int):
        config = current_app.config
        self.redis = redis_client()
        self.failures_key = f"newsletter:relay-failures:{digest_id}"
        self.backoff_seconds = config["SEND_DOMAIN_BACKOFF"]
        self.backoff_readers = config["SEND_DOMAIN_BACKOFF_READERS"]
        self.breaker_failures = config["SEND_BREAKER_FAILURES"]
        self.breaker_window = config["SEND_BREAKER_WINDOW"]
        self.backoff_until: dict[str, float] = {}  # domain -> epoch seconds
        self.strikes: dict[str, dict[str, float]] = {}  # domain -> reader -> epoch seconds
        self.reset_pending = True  # the first success of a batch clears the count

    def refresh_backoff(self, domains: set[str]) -> None:
        """Learn other workers' backoffs (one round trip)."""
        domains = sorted(domains)
        if not domains or not self.backoff_seconds:
            return
        try:
            found = self.redis.mget([self.BACKOFF_KEY + domain for domain in domains])
        except redis.RedisError as error:  # this worker's own backoffs still apply
            log.warning("domain backoffs unavailable: %s", error)
            return
        for domain, until in zip(domains, found, strict=True):
            if until is not None:
                self.backoff_until[domain] = max(float(until), self.backoff_until.get(domain, 0))

    def backing_off(self, domain: str) -> float | None:
        until = self.backoff_until.get(domain)
        return until if until is not None and until > time.time() else None

    def back_off(self, domain: str) -> None:
        if not self.backoff_seconds:
            return
        until = time.time() + self.backoff_seconds
        self.backoff_until[domain] = until
        with self._shared("domain backoff"):
            self.redis.set(self.BACKOFF_KEY + domain, f"{until:.3f}",
                           px=self.backoff_seconds * 1000)

    def deferred(self, domain: str, reader: str, code: int | None,
                 enhanced: str | None) -> bool:
        """One reader's 4xx; True when it backs the whole domain off."""
        if not self.backoff_seconds or code is None:  # a dropped connection: no reply
            return False
        if about_the_domain(code, enhanced) or self._readers_deferred(domain, reader) >= \
                self.backoff_readers:
            self.back_off(domain)
            return True
        return False

    def _readers_deferred(self, domain: str, reader: str) -> int:
        """Count this reader's 4xx; how many different readers of the domain answered
        4xx within the window, across every worker (this batch's own without Redis)."""
        now = time.time()
        since = now - self.backoff_seconds
        local = self.strikes.setdefault(domain, {})
        local[reader] = now
        for seen in [seen for seen, at in local.items() if at < since]:
            del local[seen]
        count = len(local)
        with self._shared("domain 4xx count"):
            key = self.STRIKES_KEY + domain
            pipeline = self.redis.pipeline()
            pipeline.zadd(key, {reader: now})
            pipeline.zremrangebyscore(key, "-inf", since)
            pipeline.zcard(key)
            pipeline.expire(key, self.backoff_seconds)
            count = max(count, pipeline.execute()[2])
        return count

    def connected(self) -> None:
        if self.reset_pending:
            self.reset_pending = False
            with self._shared("relay failure count"):
                self.redis.delete(self.failures_key)

    def unreachable(self) -> bool:
        """Count one connection failure; True when the breaker trips."""
        with self._shared("relay failure count"):
            failures = self.redis.incr(self.failures_key)
            if failures == 1:
                self.redis.expire(self.failures_key, self.breaker_window)
            return failures >= self.breaker_failures
        return False  # without Redis the breaker cannot count; batches keep retrying later

    def reset(self) -> None:
        with self._shared("relay failure count"):
            self.redis.delete(self.failures_key)

    @contextlib.contextmanager
    def _shared(self, what: str):
        """Redis down degrades these to per-worker knowledge; it never stops a batch
        between a message and its result."""
        try:
            yield
        except redis.RedisError as error:
            log.warning("%s not shared: %s", what, error)
