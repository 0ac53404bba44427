"""An issue's lifecycle against the real database: every move from every status, allowed
or refused, through its one writer (issues/lifecycle.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import lifecycle
from newsletter.issues.lifecycle import TRANSITIONS, Move
from newsletter.models import Digest, DigestStatus, utcnow

# What each move is given by its caller, where it takes something.
GIVEN = {Move.EDIT: {"subject": "Edited", "headline": None, "intro": "new intro",
                     "send_at": utcnow() + timedelta(days=2)},
         Move.PAUSE: {"pause_reason": "the relay is down"},
         Move.RESUME: {"guard_acknowledged_at": utcnow()}}


def make_issue(status: DigestStatus, period_key: str) -> int:
    with unit_of_work():
        digest = Digest(subject="An issue", status=status, period_key=period_key,
                        pause_reason="why it paused" if status == DigestStatus.PAUSED else None)
        db.session.add(digest)
        db.session.flush()
        return digest.id


@pytest.mark.parametrize("what", list(Move), ids=lambda move: move.value)
def test_every_move_from_every_status(app, clean_state, what):
    transition = TRANSITIONS[what]
    with app.app_context():
        for source in DigestStatus:
            digest_id = make_issue(source, f"manual-{what.value}-{source.value}")
            with unit_of_work():
                changed = lifecycle.move(digest_id, what, **GIVEN.get(what, {}))
            db.session.expire_all()
            digest = db.session.get(Digest, digest_id)
            allowed = source in transition.sources
            assert changed is allowed, (what, source)
            if not allowed:  # refused: the row is as it was
                assert digest.status == source
                assert digest.subject == "An issue" and digest.finished_at is None
                assert digest.period_key == f"manual-{what.value}-{source.value}"
                continue
            assert digest.status == transition.target
            for column in transition.stamps:
                assert getattr(digest, column) is not None, column
            for column in transition.clears:
                assert getattr(digest, column) is None, column
            for column, value in GIVEN.get(what, {}).items():
                if column not in transition.clears:
                    assert getattr(digest, column) == value, column
            if transition.frees_manual_key:
                assert digest.period_key is None


def test_a_scheduled_key_stays_taken_when_cancelled(app, clean_state):
    with app.app_context():
        digest_id = make_issue(DigestStatus.SCHEDULED, "weekly-2026-W48")
        with unit_of_work():
            assert lifecycle.move(digest_id, Move.CANCEL)
        assert db.session.get(Digest, digest_id).period_key == "weekly-2026-W48"


def test_finishing_waits_for_its_extra_condition(app, clean_state):
    with app.app_context():
        digest_id = make_issue(DigestStatus.SENDING, "manual-finish")
        with unit_of_work():
            assert not lifecycle.move(digest_id, Move.FINISH, where=Digest.id < 0)
            assert lifecycle.move(digest_id, Move.FINISH, where=Digest.id > 0)
        assert db.session.get(Digest, digest_id).status == DigestStatus.SENT


def test_a_move_refuses_columns_it_does_not_set(app, clean_state):
    with app.app_context():
        digest_id = make_issue(DigestStatus.SENDING, "manual-refuse")
        with pytest.raises(TypeError):
            lifecycle.move(digest_id, Move.FINISH, pause_reason="no")


def test_the_status_sql_matches_the_database(app, clean_state):
    """The fragment the send loop's hot statements use, run as they run it."""
    with app.app_context():
        digest_id = make_issue(DigestStatus.SENDING, "manual-sql")
        for status in DigestStatus:
            found = db.session.scalar(select(text(lifecycle.is_status_sql(status))),
                                      {"digest_id": digest_id})
            assert bool(found) is (status == DigestStatus.SENDING), status
