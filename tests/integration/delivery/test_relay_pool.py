"""A pool of two relays: the first stopped at 20 % of a send, the send goes on through
the second; every reader gets the issue once, nobody fails, and the ledger and the
report say which relay carried what.

The relay stops as a mail server does on shutdown: new transactions get 421, the ones
under way finish, then it closes. (A relay killed mid-DATA leaves that one message
``unknown``, which the ledger flags: digests.md.)"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.issues import reports
from newsletter.models import Delivery
from tests.factories import add_article, add_editor, add_subscribers, send_now, session_client
from tests.helpers import (
    RecordingSMTPHandler,
    send_ledger,
    start_celery_worker,
    stop_processes,
    subprocess_env,
    wait_until,
    wait_until_sent,
)

IN_CI = os.environ.get("CI") == "true"
READERS = 400 if IN_CI else 1500


class StoppingRelay(RecordingSMTPHandler):
    """Refuses new transactions once ``closing`` is set; counts those under way."""

    def __init__(self):
        super().__init__()
        self.closing = False
        self.under_way = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.closing:
            return "421 4.3.2 Service shutting down"
        self.under_way += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.under_way -= 1

    async def handle_RSET(self, server, session, envelope):
        if envelope.mail_from:
            self.under_way -= 1
        return "250 OK"


def shut_down(controller: Controller) -> None:
    controller.handler.closing = True
    wait_until(lambda: controller.handler.under_way <= 0, 30, "transactions under way")
    controller.stop()


@pytest.fixture
def two_relays():
    relays = []
    for _ in range(2):
        controller = Controller(StoppingRelay(), hostname="127.0.0.1", port=free_port())
        controller.start()
        relays.append(controller)
    yield relays
    for controller in relays:
        with contextlib.suppress(AssertionError):  # stopped by the test already
            controller.stop()


def test_the_send_fails_over_when_a_relay_stops(app, clean_state, two_relays):
    first, second = two_relays
    pool = [{"name": "first", "host": "127.0.0.1", "port": first.port, "weight": 1},
            {"name": "second", "host": "127.0.0.1", "port": second.port, "weight": 1}]
    add_subscribers(app, READERS)
    add_article(app)
    env = subprocess_env(app, SMTP_RELAYS=json.dumps(pool), SEND_BATCH_SIZE=50,
                         SEND_CONCURRENCY=4)
    workers = [start_celery_worker(env, 2), start_celery_worker(env, 2)]
    try:
        digest_id = send_now(app)

        def delivered() -> int:
            return len(first.handler.messages) + len(second.handler.messages)

        # Batches pick a relay by weight: by then both have been picked.
        wait_until(lambda: delivered() >= READERS // 5 and first.handler.messages
                   and second.handler.messages, 120,
                   lambda: f"20 % delivered through both relays, got "
                           f"{len(first.handler.messages)} + {len(second.handler.messages)}")
        shut_down(first)
        carried_by_first = len(first.handler.messages)
        progress = wait_until_sent(app, digest_id, timeout=300)
    finally:
        stop_processes(*workers)
    received = Counter(message["To"].addresses[0].addr_spec
                       for message in first.handler.messages + second.handler.messages)
    assert len(received) == READERS and set(received.values()) == {1}
    assert progress["sent"] == READERS
    assert progress["failed"] == progress["unknown"] == progress["deferred"] == 0
    assert len(first.handler.messages) == carried_by_first  # nothing after it stopped
    _, _, rows = send_ledger(app, digest_id)
    by_relay = Counter(row.relay for _, row in rows)
    assert by_relay == {"first": carried_by_first, "second": READERS - carried_by_first}
    with app.app_context():
        lines = {line.relay: line for line in reports.by_relay(digest_id)}
        assert lines["first"].sent == carried_by_first and lines["first"].failed == 0
        assert lines["second"].sent == READERS - carried_by_first
        assert db.session.scalar(select(func.count()).where(
            Delivery.digest_id == digest_id, Delivery.relay.is_(None))) == 0


def test_the_send_pauses_only_when_every_relay_is_out_and_probes_one_back(
        app, client, celery_worker, monkeypatch):
    from newsletter.db import unit_of_work
    from newsletter.issues import digests
    from newsletter.mail.relays import parse_relays
    from newsletter.mail.transport import SMTPTransport
    from newsletter.models import Digest, DigestStatus

    ports = [free_port(), free_port()]  # nothing listens on either yet
    pool = parse_relays(json.dumps([{"name": f"r{n}", "host": "127.0.0.1", "port": port}
                                    for n, port in enumerate(ports)]))
    monkeypatch.setitem(app.config, "SMTP_RELAYS", pool)
    monkeypatch.setitem(app.config, "SEND_BREAKER_FAILURES", 2)
    monkeypatch.setitem(app.config, "SEND_BREAKER_WINDOW", 2)
    transports = {relay.name: SMTPTransport(app.config, relay) for relay in pool}
    monkeypatch.setitem(app.extensions, "smtp_relays", transports)
    add_subscribers(app, 20)
    add_article(app)
    digest_id = send_now(app)

    def paused():
        with app.app_context():
            digest = db.session.get(Digest, digest_id)
            return digest.status == DigestStatus.PAUSED and digest.pause_reason

    reason = wait_until(paused, 60, "the send to pause itself")
    assert "could not be reached" in reason
    assert send_ledger(app, digest_id)[1]["pending"] == 20  # nobody failed for it

    handler = RecordingSMTPHandler()
    revived = Controller(handler, hostname="127.0.0.1", port=ports[1])
    revived.start()
    try:
        with app.app_context(), unit_of_work():
            assert digests.resume(digest_id)
        progress = wait_until_sent(app, digest_id, timeout=120)
    finally:
        revived.stop()
        for transport in transports.values():
            transport.close()
    assert progress["sent"] == 20 and progress["failed"] == 0
    assert len({message["To"].addresses[0].addr_spec for message in handler.messages}) == 20
    _, _, rows = send_ledger(app, digest_id)
    assert {row.relay for _, row in rows} == {"r1"}
    page = session_client(app, add_editor(app, "owner@example.com", "owner")).get(
        f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert 'id="by-relay"' in page and "<td>r1</td><td>20</td><td>0</td>" in page


def test_a_relay_with_a_rate_never_carries_more_than_it_allows(app, clean_state, two_relays):
    """Two worker processes (four batches at once) share the capped relay's rate through
    Redis: its k-th message cannot arrive before k / rate seconds after the send began."""
    capped, free = two_relays
    rate = 10.0
    pool = [{"name": "capped", "host": "127.0.0.1", "port": capped.port, "weight": 3,
             "rate": rate},
            {"name": "free", "host": "127.0.0.1", "port": free.port, "weight": 1}]
    readers = 100
    add_subscribers(app, readers)
    add_article(app)
    env = subprocess_env(app, SMTP_RELAYS=json.dumps(pool), SEND_BATCH_SIZE=10,
                         SEND_CONCURRENCY=4)
    workers = [start_celery_worker(env, 2), start_celery_worker(env, 2)]
    try:
        began = time.monotonic()  # the clock of the handlers' received_at
        digest_id = send_now(app)
        progress = wait_until_sent(app, digest_id, timeout=120)
    finally:
        stop_processes(*workers)
    assert progress["sent"] == readers and progress["failed"] == 0
    received = Counter(message["To"].addresses[0].addr_spec
                       for message in capped.handler.messages + free.handler.messages)
    assert len(received) == readers and set(received.values()) == {1}
    arrivals = sorted(capped.handler.received_at)
    # Weight 3 of 4 over ten batches: the capped relay carried several.
    assert len(arrivals) >= 2 * 10
    # Each slot is reserved on Redis's clock after the send began; the k-th goes out
    # at its slot or later. (1 ms: the two clocks' reading granularity.)
    early = [(k, at - began) for k, at in enumerate(arrivals) if at - began < k / rate - 0.001]
    assert not early, f"the capped relay carried messages ahead of its rate: {early[:5]}"
    _, _, rows = send_ledger(app, digest_id)
    assert Counter(row.relay for _, row in rows)["capped"] == len(arrivals)
