"""The figures ``GET /metrics`` reads from the database and Redis at each scrape: a few
aggregate queries and one Redis round trip, so a scrape every 15 s costs next to nothing.

Readers by status, ledger rows by status (the terminal ones as counters), sends in
progress, each running send's hard-bounce and complaint rates over the guard's window,
the task queues' lengths and each relay's circuit.
"""

from __future__ import annotations

import logging

import redis
from flask import current_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from newsletter import jobs
from newsletter.bounces import stats
from newsletter.delivery import guard, relay
from newsletter.extensions import db
from newsletter.mail.relays import relays_from_config
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
)

log = logging.getLogger(__name__)

# A row in one of these has its result: it only ever counts up.
TERMINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN,
            DeliveryStatus.SKIPPED)
OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED)
# kombu's Redis transport keeps a queue's messages of priority p > 0 in a list of its own.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class Figures:
    """A prometheus-client collector, read inside an app context."""

    def collect(self):
        yield from self._readers()
        yield from self._ledger()
        yield from self._sends()
        yield from self._redis_figures()

    def _readers(self):
        counts = dict(db.session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
        family = GaugeMetricFamily("newsletter_subscribers", "Readers by status.",
                                   labels=["status"])
        for status in SubscriberStatus:
            family.add_metric([status.value], counts.get(status, 0))
        yield family

    def _ledger(self):
        counts = dict(db.session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        done = CounterMetricFamily(
            "newsletter_deliveries", "Ledger rows with their result, by status.",
            labels=["status"])
        for status in TERMINAL:
            done.add_metric([status.value], counts.get(status, 0))
        yield done
        waiting = GaugeMetricFamily(
            "newsletter_deliveries_open", "Ledger rows still to send, by status.",
            labels=["status"])
        for status in OPEN:
            waiting.add_metric([status.value], counts.get(status, 0))
        yield waiting

    def _sends(self):
        running = list(db.session.scalars(select(Digest).where(
            Digest.status.in_([DigestStatus.SENDING, DigestStatus.PAUSED]))))
        sends = GaugeMetricFamily("newsletter_sends", "Issues sending or paused mid-send.",
                                  labels=["status"])
        for status in (DigestStatus.SENDING, DigestStatus.PAUSED):
            sends.add_metric([status.value], sum(d.status == status for d in running))
        yield sends
        yield GaugeMetricFamily(
            "newsletter_sends_paused_by_guard",
            "Issues the deliverability guard paused (they wait for an owner).",
            value=sum(guard.paused_by_guard(digest) for digest in running))
        hard = GaugeMetricFamily(
            "newsletter_send_hard_bounce_percent",
            "Hard bounces per message sent of each running issue, over the guard's window.",
            labels=["issue"])
        complaints = GaugeMetricFamily(
            "newsletter_send_complaint_percent",
            "Complaints per message sent of each running issue, over the guard's window.",
            labels=["issue"])
        for digest in running:
            if stats.has_bad_events(digest.id):
                rates = stats.issue_rates(digest.id, since=digest.guard_acknowledged_at)
            else:  # the common case: one small query, no counting
                rates = {"hard_percent": 0.0, "complaint_percent": 0.0}
            hard.add_metric([str(digest.id)], rates["hard_percent"])
            complaints.add_metric([str(digest.id)], rates["complaint_percent"])
        yield hard
        yield complaints

    def _redis_figures(self):
        config = current_app.config
        queues = [jobs.queue_name(config["TASK_QUEUE"], kind) for kind in jobs.QUEUE_KINDS]
        names = [spec.name for spec in relays_from_config(config)]
        up = GaugeMetricFamily("newsletter_redis_up", "Redis answered this scrape.")
        try:
            client = relay.redis_client()
            pipeline = client.pipeline(transaction=False)
            for queue in queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipeline.llen(queue + suffix)
            lengths = pipeline.execute()
            open_relays = relay.open_relays(names, client)
        except redis.RedisError as error:
            log.warning("metrics: Redis figures unavailable: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily("newsletter_queue_length", "Tasks waiting in each queue.",
                                   labels=["queue"])
        steps = len(_PRIORITY_SUFFIXES)
        for number, queue in enumerate(queues):
            family.add_metric([queue], sum(lengths[number * steps:(number + 1) * steps]))
        yield family
        circuit = GaugeMetricFamily(
            "newsletter_relay_circuit_open",
            "1 while a relay's circuit breaker keeps it out of sends, else 0.",
            labels=["relay"])
        for name in names:
            circuit.add_metric([name], 1 if name in open_relays else 0)
        yield circuit
