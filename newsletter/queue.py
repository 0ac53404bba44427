"""Enqueue Celery tasks by name, only after the current transaction commits.

The app never imports ``workers``: it names tasks, declared in ``newsletter.jobs``.
A task enqueued before commit could run before its rows exist, and one enqueued in
a transaction that then rolls back would act on rows that never existed.
"""

from __future__ import annotations

import logging
import time

import redis
from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from newsletter import jobs, redis_connections
from newsletter.extensions import db

log = logging.getLogger(__name__)
_PENDING_KEY = "newsletter.pending_tasks"


def enqueue_after_commit(task_name: str, *args) -> None:
    jobs.job(task_name)  # a name nobody declared fails here, not in a worker
    db.session.info.setdefault(_PENDING_KEY, []).append((task_name, args))


def send_task_now(task_name: str, *args, countdown: float | None = None) -> bool:
    """Publish a task; False (logged) when the broker is unreachable.

    Callers never depend on this succeeding: every task is backed by a database
    row that a periodic sweeper re-enqueues.
    """
    jobs.job(task_name)
    celery = current_app.extensions["celery"]
    try:
        celery.send_task(task_name, args=list(args), countdown=countdown)
    except Exception as error:  # kombu raises many types for an unreachable broker
        log.warning("could not enqueue %s%r: %s", task_name, args, error)
        return False
    return True


def _redis() -> redis.Redis:
    client = current_app.extensions.get("redis")
    if client is None:
        client = current_app.extensions["redis"] = redis_connections.client(
            current_app.config, connect_timeout=1, timeout=1)
    return client


def wake_key(task_name: str) -> str:
    return f"{current_app.config['TASK_QUEUE']}:wake:{task_name}"


# SET the wake-up key if absent ('set'); otherwise how long it has left (ms).
_WAKE = """
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return 'set' end
return redis.call('PTTL', KEYS[1])
"""


def wake(task_name: str, window: float = 1.0, first_look_after: float = 0.0) -> None:
    """Publish ``task_name`` unless it was published in the last ``window`` seconds.

    For work recorded in rows that one task drains (subscribe requests): a request
    costs at most one Redis call instead of a Celery publish. The task calls ``woken`` when
    it has found nothing left, so a row committed after its last look wakes the
    next one; the window's expiry also starts another copy under sustained load.
    Redis down is logged and ignored: the beat's sweeper publishes the task.

    ``first_look_after``: the task sleeps that long before its first look. The copy
    published when the key was set therefore finds every row committed until
    (key set + first_look_after); until then this process skips the Redis call.
    """
    key = wake_key(task_name)
    covered_until = current_app.extensions.setdefault("wake_covered_until", {})
    asked = time.monotonic()
    if asked < covered_until.get(key, 0.0):
        return
    try:
        remaining_ms = _wake_script()(keys=[key], args=[int(window * 1000)])
    except redis.RedisError as error:
        log.warning("could not wake %s: %s", task_name, error)
        return
    if remaining_ms == b"set":  # ours: publish
        send_task_now(task_name)
        remaining_ms = window * 1000
    if remaining_ms >= 0 and first_look_after:
        # The key was set no earlier than `asked` minus the part of its window that
        # has run; a small margin for PTTL's rounding.
        covered_until[key] = asked + first_look_after - window + remaining_ms / 1000 - 0.01


def _wake_script():
    script = current_app.extensions.get("wake_script")
    if script is None:
        script = current_app.extensions["wake_script"] = _redis().register_script(_WAKE)
    return script


def woken(task_name: str) -> None:
    """Called by the drained task before its last look: the next row wakes a task."""
    try:
        _redis().delete(wake_key(task_name))
    except redis.RedisError as error:  # the window expires by itself
        log.warning("could not reset the wake-up of %s: %s", task_name, error)


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    for task_name, args in session.info.pop(_PENDING_KEY, []):
        send_task_now(task_name, *args)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    session.info.pop(_PENDING_KEY, None)
