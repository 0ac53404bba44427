"""unit_of_work: commits at the end of the block, rolls back when the block or the
commit itself fails, and leaves the session usable either way."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Topic


def count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Topic))


def test_the_block_is_committed_when_it_ends(app, clean_state):
    with app.app_context(), unit_of_work():
        db.session.add(Topic(slug="europe", name="Europe", position=1))
    assert count(app) == 1


def test_an_exception_in_the_block_rolls_everything_back(app, clean_state):
    with app.app_context():
        with pytest.raises(RuntimeError), unit_of_work():
            db.session.add(Topic(slug="europe", name="Europe", position=1))
            db.session.flush()
            raise RuntimeError("after the write")
        assert db.session.scalar(select(func.count()).select_from(Topic)) == 0


def test_a_failed_commit_is_rolled_back_and_the_session_goes_on(app, clean_state):
    with app.app_context():
        with pytest.raises(IntegrityError), unit_of_work():  # the clash shows at commit
            db.session.add(Topic(slug="europe", name="Europe", position=1))
            db.session.add(Topic(slug="europe", name="Europe again", position=2))
        with unit_of_work():  # the same session, as a poller's next message would use it
            db.session.add(Topic(slug="asia", name="Asia", position=3))
    assert count(app) == 1
