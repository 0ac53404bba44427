"""What the workers share about the relays through Redis: the send rate cap, per-domain
backoff, and each relay's circuit breaker.

The pool (``NEWSLETTER_SMTP_RELAYS``): each batch picks a relay by weight among those
whose circuit is closed. Connection failures to a relay are counted across workers;
SEND_BREAKER_FAILURES of them within SEND_BREAKER_WINDOW open its circuit for a window,
and the batch goes on through another relay. After the window a batch may pick it
again: that batch is the probe, and one more failure opens it again at once, one
success closes it. The send pauses only when every relay's circuit is open.

A 4xx is about the scope it names: a busy, full or greylisting mailbox defers that
reader only; the domain backs off on a reply about the domain (421, or a 4.7.x rate
or policy reply) or when several different readers of it answer 4xx within the
backoff window."""

from __future__ import annotations

import contextlib
import logging
import random
import time

import redis
from flask import current_app

from newsletter import redis_connections
from newsletter.mail.relays import relays_from_config

log = logging.getLogger(__name__)

_redis_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    """One client (and connection pool) per worker process, not one per batch."""
    config = current_app.config
    key = f"{config['REDIS_URL']} {config['REDIS_SENTINELS']}"
    if key not in _redis_clients:
        _redis_clients[key] = redis_connections.client(config, connect_timeout=2, timeout=5)
    return _redis_clients[key]


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

    def __init__(self, rate: float | None, client: redis.Redis | None = None,
                 key: str | None = None):
        self.rate = rate
        self.key = key or self.KEY
        if rate:
            self.redis = client or redis_client()
            self.reserve = self.redis.register_script(_RESERVE_SLOT)

    def delay(self) -> float:
        """Reserve a slot; seconds until it (0 when uncapped)."""
        if not self.rate:
            return 0.0
        return max(0.0, float(self.reserve(keys=[self.key], args=[1 / self.rate])))

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


class RelayPool:
    """The relays of the pool with their weights and shared circuit breakers."""

    FAILURES_KEY = "newsletter:relay-failures:"  # + relay name

    def __init__(self, transports: dict, specs, client: redis.Redis | None = None):
        config = current_app.config
        self.transports = transports  # name -> SMTPTransport
        weights = {spec.name: spec.weight for spec in specs}
        self.weights = {name: weights.get(name, 1.0) for name in transports}
        self.rates = {spec.name: spec.rate for spec in specs}
        self.redis = client or redis_client()
        self.failures = config["SEND_BREAKER_FAILURES"]
        self.window = config["SEND_BREAKER_WINDOW"]

    def choose(self, excluded: set[str] = frozenset()):
        """A relay by weight among those whose circuit is closed, leaving out
        ``excluded``; None when none is left. Without Redis every relay is a candidate."""
        candidates = [name for name in self.transports if name not in excluded]
        try:
            out = open_relays(candidates, self.redis)
        except redis.RedisError as error:
            log.warning("relay circuits unavailable: %s", error)
            out = set()
        candidates = [name for name in candidates if name not in out]
        if not candidates:
            return None
        name = random.choices(candidates, [self.weights[n] for n in candidates])[0]
        return self.transports[name]

    def first_to_probe(self):
        """Every circuit is open: the relay whose window ends first (a resumed send's
        first batch probes it rather than pausing again untried)."""
        try:
            ttls = {name: self.redis.pttl(OPEN_KEY + name) for name in self.transports}
        except redis.RedisError:
            ttls = {}
        return self.transports[min(self.transports, key=lambda name: ttls.get(name, 0))]

    def failed(self, name: str) -> bool:
        """Count one connection failure; True when it opens the relay's circuit. The
        count outlives the open window, so a failed probe opens it again at once."""
        try:
            key = self.FAILURES_KEY + name
            pipeline = self.redis.pipeline()
            pipeline.incr(key)
            pipeline.expire(key, 2 * self.window)
            failures = pipeline.execute()[0]
            if failures >= self.failures:
                self.redis.set(OPEN_KEY + name, "1", ex=self.window)
                log.error("relay %s: %d connection failures, out of sends for %d s",
                          name, failures, self.window)
                return True
        except redis.RedisError as error:
            log.warning("relay failure count not shared: %s", error)
        return False

    def answered(self, name: str) -> None:
        """The relay took a transaction: its circuit is closed."""
        try:
            self.redis.delete(self.FAILURES_KEY + name, OPEN_KEY + name)
        except redis.RedisError as error:
            log.warning("relay circuit not reset: %s", error)

    def all_open(self) -> bool:
        try:
            return len(open_relays(list(self.transports), self.redis)) == len(self.transports)
        except redis.RedisError:
            return False


def close_circuits(config) -> None:
    """Every relay of the pool gets its chance again (an editor resumed a send)."""
    names = [relay.name for relay in relays_from_config(config)]
    try:
        redis_client().delete(*[key + name for name in names
                                for key in (RelayPool.FAILURES_KEY, OPEN_KEY)])
    except redis.RedisError as error:
        log.warning("relay circuits not reset: %s", error)


def about_the_domain(code: int | None, enhanced: str | None) -> bool:
    """A 4xx that speaks for the whole domain (or the relay's path to it): 421 closes
    the connection, 4.7.x is a rate limit or policy; other 4xx speak for one mailbox."""
    return code == 421 or (enhanced or "").startswith("4.7.")


class Relay:
    """What the workers share about recipient domains through Redis: per-domain
    backoff and the readers of each domain that lately answered 4xx."""

    BACKOFF_KEY = "newsletter:domain-backoff:"
    STRIKES_KEY = "newsletter:domain-4xx:"  # reader -> when, per domain

    def __init__(self, digest_id: int):
        config = current_app.config
        self.redis = redis_client()
        self.backoff_seconds = config["SEND_DOMAIN_BACKOFF"]
        self.backoff_readers = config["SEND_DOMAIN_BACKOFF_READERS"]
        self.backoff_until: dict[str, float] = {}  # domain -> epoch seconds
        self.strikes: dict[str, dict[str, float]] = {}  # domain -> reader -> epoch seconds

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

    @contextlib.contextmanager
    def _shared(self, what: str):
        """Redis down degrades these to per-worker knowledge; it never stops a batch
        between a message and its result."""
        try:
            yield
        except redis.RedisError as error:
            log.warning("%s not shared: %s", what, error)
