"""Health probes for a load balancer or orchestrator: ``/healthz/live`` (the process
answers) and ``/healthz/ready`` (the database and Redis answer within a deadline).

No login, no rate limit, no session, no cookie: a probe must never be refused by
the protections the rest of the site has, nor be the thing that makes Redis busy.
The answer names the failed part only; the error itself goes to the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from newsletter import redis_connections
from newsletter.extensions import csrf, db, limiter

log = logging.getLogger(__name__)

DEADLINE = 1.5  # seconds each part has to answer, checked in parallel

bp = Blueprint("health", __name__, url_prefix="/healthz")
csrf.exempt(bp)
limiter.exempt(bp)

# One thread per part at most: a part that hangs past the deadline (a database host
# that swallows packets) keeps its thread, and later probes wait on that same check
# instead of starting more threads behind it. Daemon threads: a hung check never
# holds up the process's exit.
_in_flight: dict[str, Check] = {}
_in_flight_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}


class Check:
    """One part's check, running in a thread of its own."""

    def __init__(self, part: str, run: Callable[[], None]):
        self.part, self.run = part, run
        self.finished = threading.Event()
        self.error: Exception | None = None
        threading.Thread(target=self._run, name=f"healthz-{part}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.run()
        except Exception as error:  # any failure of the part: named, never shown
            self.error = error
        finally:
            self.finished.set()


def _database_answers(engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _redis_answers(config) -> None:
    key = f"{config['REDIS_URL']} {config['REDIS_SENTINELS']}"
    if key not in _redis_clients:
        _redis_clients[key] = redis_connections.client(config, connect_timeout=DEADLINE,
                                                       timeout=DEADLINE)
    _redis_clients[key].ping()


def _start(part: str, run: Callable[[], None]) -> Check:
    with _in_flight_lock:
        check = _in_flight.get(part)
        if check is None or check.finished.is_set():
            check = _in_flight[part] = Check(part, run)
        return check


def _failed_parts(checks: dict[str, Callable[[], None]]) -> list[str]:
    started = [_start(part, run) for part, run in checks.items()]  # in parallel
    deadline = time.monotonic() + DEADLINE
    failed = []
    for check in started:
        if not check.finished.wait(max(0.0, deadline - time.monotonic())):
            log.warning("readiness: %s did not answer within %s s", check.part, DEADLINE)
            failed.append(check.part)
        elif check.error is not None:
            log.warning("readiness: %s failed: %s", check.part, check.error)
            failed.append(check.part)
    return failed


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/live")
def live():
    return _no_store(jsonify(status="ok"))


@bp.get("/ready")
def ready():
    engine, config = db.engine, current_app.config
    failed = _failed_parts({"database": lambda: _database_answers(engine),
                            "redis": lambda: _redis_answers(config)})
    if failed:
        return _no_store(jsonify(status="unavailable", failed=failed)), 503
    return _no_store(jsonify(status="ok"))
