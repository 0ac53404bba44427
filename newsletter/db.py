"""The unit of work: where a transaction begins and ends.

Views, CLI commands and task bodies (the boundaries) wrap what they do in one
``unit_of_work()``; services write into the session and never commit, so a caller
can compose several services in one transaction. The few deliberate early commits
(claiming ledger rows or an outbox mail before talking to the relay) are named
functions that say so in their docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import scoped_session

from newsletter.extensions import db


@contextmanager
def unit_of_work() -> Iterator[scoped_session]:
    """One transaction: committed when the block ends, rolled back when it raises.
    Tasks enqueued with ``enqueue_after_commit`` inside it are published on commit."""
    try:
        yield db.session
        db.session.commit()
    except BaseException:  # a failed commit too: the session is usable again afterwards
        db.session.rollback()
        raise


_DONE = object()


def commit_each(steps: Iterable[object]) -> None:
    """Drive a service that yields after each item (an import's chunk): the writes up
    to each yield are one unit of work, committed there; one that raises is rolled
    back and ends the run."""
    steps = iter(steps)
    while True:
        with unit_of_work():
            if next(steps, _DONE) is _DONE:
                return
