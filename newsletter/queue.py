"""Enqueue Celery tasks by name, only after the current transaction commits.

The app never imports ``workers``: it names tasks. A task enqueued before commit
could run before its rows exist, and one enqueued in a transaction that then
rolls back would act on rows that never existed.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from newsletter.extensions import db

log = logging.getLogger(__name__)
_PENDING_KEY = "newsletter.pending_tasks"

# Three queues, so a reader's confirmation never waits behind a bulk send.
# Queue names are TASK_QUEUE + "." + kind; a worker started without -Q reads all three.
QUEUE_KINDS = ("transactional", "bulk", "maintenance")
TASK_QUEUE_KIND = {
    "workers.tasks.send_outbox_mail": "transactional",
    "workers.tasks.send_editor_mail": "transactional",
    "workers.tasks.send_digest_batch": "bulk",
}  # every other task (sweeps, feeds, schedule) is maintenance


def queue_name(prefix: str, kind: str) -> str:
    return f"{prefix}.{kind}"


def enqueue_after_commit(task_name: str, *args) -> None:
    db.session.info.setdefault(_PENDING_KEY, []).append((task_name, args))


def send_task_now(task_name: str, *args) -> bool:
    """Publish a task; False (logged) when the broker is unreachable.

    Callers never depend on this succeeding: every task is backed by a database
    row that a periodic sweeper re-enqueues.
    """
    celery = current_app.extensions["celery"]
    try:
        celery.send_task(task_name, args=list(args))
    except Exception as error:  # kombu raises many types for an unreachable broker
        log.warning("could not enqueue %s%r: %s", task_name, args, error)
        return False
    return True


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    for task_name, args in session.info.pop(_PENDING_KEY, []):
        send_task_now(task_name, *args)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    session.info.pop(_PENDING_KEY, None)
