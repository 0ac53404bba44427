"""Claim heartbeats: how the sweeper tells a dead worker's claim within seconds.

A running batch keeps a short-lived Redis key alive for its claim, renewed by a
thread of its own (so a slow SMTP reply does not stop it). The key is set before
the rows are claimed and deleted once they are all recorded or given back, so a
claim whose key is gone belongs to a process that died (SIGKILL, OOM, a lost
host) or to a batch that raised (a database outage): the sweeper takes its rows
back at once instead of waiting out SEND_LEASE. The writes stay owned
(ledger.py), so a holder that is only slow stops at its next write.

When Redis cannot be read nothing is judged dead: the lease is the fallback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection

import redis

from newsletter.delivery.relay import redis_client

log = logging.getLogger(__name__)

TTL = 10  # seconds a claim outlives the process that renews it
RENEW_EVERY = TTL / 4


def _key(token: str) -> str:
    return f"newsletter:claim-alive:{token}"


class Heartbeat:
    """``with Heartbeat(token):`` keeps the claim alive while the block runs."""

    def __init__(self, token: str):
        self.token = token
        self.client = redis_client()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._renew, daemon=True,
                                       name=f"heartbeat-{token[:8]}")

    def __enter__(self) -> Heartbeat:
        self._beat()
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join()
        with contextlib.suppress(redis.RedisError):  # else it expires by itself within TTL
            self.client.delete(_key(self.token))

    def _renew(self) -> None:
        while not self.stopped.wait(RENEW_EVERY):
            self._beat()

    def _beat(self) -> None:
        try:
            self.client.set(_key(self.token), 1, ex=TTL)
        except redis.RedisError as error:
            # The sweeper cannot read Redis either, or takes the rows back and this
            # batch stops at its next owned write: never two senders.
            log.warning("claim %s: heartbeat not renewed (%s)", self.token[:8], error)


def dead(tokens: Collection[str]) -> set[str]:
    """The claims among ``tokens`` whose heartbeat is gone (none when Redis is down)."""
    tokens = sorted(tokens)
    if not tokens:
        return set()
    try:
        alive = redis_client().mget([_key(token) for token in tokens])
    except redis.RedisError as error:
        log.warning("claim heartbeats unreadable (%s): only expired leases are taken back",
                    error)
        return set()
    return {token for token, beat in zip(tokens, alive, strict=True) if beat is None}
