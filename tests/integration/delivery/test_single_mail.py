"""Single mails follow the relay pool: the first relay stopped, a confirmation goes out
once through the second; once the first relay's circuit is open, the next mail does not
knock on it again. A real worker process with the pool in its settings, real relays."""

from __future__ import annotations

import json

import redis
from aiosmtpd.controller import Controller
from sqlalchemy import select

from newsletter.delivery.relay import OPEN_KEY, RelayPool
from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.models import MailTemplate, OutboxMail, Subscriber
from tests.helpers import (
    RecordingSMTPHandler,
    start_celery_worker,
    stop_processes,
    subprocess_env,
    subscribe_by_form,
    wait_until,
)


def sent_confirmations(app, email: str) -> list[OutboxMail]:
    """(The worker makes the reader from the request first.)"""
    with app.app_context():
        rows = db.session.scalars(select(OutboxMail).join(
            Subscriber, Subscriber.id == OutboxMail.subscriber_id).where(
            Subscriber.email_normalized == email, OutboxMail.template == MailTemplate.CONFIRM,
            OutboxMail.sent_at.is_not(None))).all()
        for row in rows:
            db.session.expunge(row)
        db.session.remove()
        return rows


def test_a_confirmation_goes_through_the_next_relay_when_the_first_is_stopped(app, client):
    stopped = Controller(RecordingSMTPHandler(), hostname="127.0.0.1", port=free_port())
    stopped.start()
    stopped.stop()  # its port no longer answers
    running = Controller(RecordingSMTPHandler(), hostname="127.0.0.1", port=free_port())
    running.start()
    # The stopped relay weighs so much more that every mail picks it first.
    pool = [{"name": "first", "host": "127.0.0.1", "port": stopped.port, "weight": 1e6},
            {"name": "second", "host": "127.0.0.1", "port": running.port, "weight": 1e-6}]
    broker = redis.Redis.from_url(app.config["REDIS_URL"])
    worker = start_celery_worker(subprocess_env(app, SMTP_RELAYS=json.dumps(pool),
                                                SEND_BREAKER_FAILURES=1,
                                                SEND_BREAKER_WINDOW=600))
    try:
        assert subscribe_by_form(client, "ada@example.org").status_code == 302
        wait_until(lambda: sent_confirmations(app, "ada@example.org"), 60,
                   "the confirmation to be sent")
        # One failure at the first relay opened its circuit (SEND_BREAKER_FAILURES=1).
        assert broker.get(RelayPool.FAILURES_KEY + "first") == b"1"
        assert broker.exists(OPEN_KEY + "first")

        assert subscribe_by_form(client, "grace@example.org").status_code == 302
        wait_until(lambda: sent_confirmations(app, "grace@example.org"), 60,
                   "the second confirmation to be sent")
    finally:
        stop_processes(worker)
        running.stop()
    received = [message["To"].addresses[0].addr_spec for message in running.handler.messages]
    assert sorted(received) == ["ada@example.org", "grace@example.org"]  # each once
    # The open circuit kept the second mail off the first relay: no second failure.
    assert broker.get(RelayPool.FAILURES_KEY + "first") == b"1"
    [ada] = sent_confirmations(app, "ada@example.org")
    assert ada.last_error is None and ada.attempts == 1  # one task, no retry needed
