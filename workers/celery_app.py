"""The Celery entry point: ``celery -A workers.celery_app worker|beat``."""

import os
import signal

from billiard.process import current_process
from celery.signals import task_postrun, task_prerun, worker_process_init

from newsletter import create_app
from newsletter.delivery import dispatch

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
celery_app.conf.include = ["workers.tasks"]

# systemd's default stop (and `kill -- -PGID`) sends SIGTERM to the pool processes
# too, which would kill a batch between "the relay said 250" and recording it. A
# pool process busy with a task defers it: a batch records the message in hand,
# gives back the rest and hands the send on; the main process's warm shutdown then
# ends the pool. An idle pool process stops at once, as before.
_in_pool_process = False
_busy = False
_pool_handler = None  # billiard's own SIGTERM handler, for an idle pool process


@worker_process_init.connect
def _pool_process_started(**_) -> None:
    global _in_pool_process
    # The solo pool sends this in the main process too, whose SIGTERM must stay
    # Celery's warm shutdown (replaced, a SIGTERM during a task was swallowed).
    _in_pool_process = current_process().name != "MainProcess"


def _on_sigterm(signum, frame) -> None:
    if _busy:
        dispatch.request_stop()
        return
    if callable(_pool_handler):
        _pool_handler(signum, frame)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


@task_prerun.connect
def _task_started(**_) -> None:
    # Installed here, not at process start: billiard replaces every SIGTERM handler
    # after Celery's process initialiser has run.
    global _busy, _pool_handler
    _busy = True
    if _in_pool_process and _pool_handler is None:
        _pool_handler = signal.signal(signal.SIGTERM, _on_sigterm)


@task_postrun.connect
def _task_ended(**_) -> None:
    global _busy
    _busy = False
