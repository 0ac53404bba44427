"""An issue's life: composed and started together, drafts started or discarded, cancel
frees the articles, and the weekly trigger keys on its scheduled time."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Delivery, Digest, DigestStatus
from tests.factories import add_article, add_subscribers, make_editor, send_now
from tests.helpers import (
    csrf_token_from,
    login,
    run,
    subprocess_env,
    wait_for_idle_ledger,
    wait_until_sent,
)

PARIS = ZoneInfo("Europe/Paris")


def issue_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Digest))


def legacy_draft(app) -> int:
    """A draft as an older version left it after a crash between compose and start."""
    with app.app_context():
        digest = digests.compose()
        db.session.commit()
        return digest.id


# --- compose and start in one transaction -------------------------------------------

def test_a_failure_between_compose_and_start_leaves_no_draft(app, client, monkeypatch):
    """Simulated by raising where start_send would run (same process)."""
    add_subscribers(app, 2)
    add_article(app)

    def crash(digest_id, now=None, expected_recipients=None):
        raise RuntimeError("worker lost between compose and start")

    monkeypatch.setattr(digests, "start_send", crash)
    for trigger in (digests.send_now,
                    lambda: digests.run_weekly(datetime(2026, 11, 30, 8, 0, tzinfo=UTC))):
        with app.app_context(), pytest.raises(RuntimeError):
            trigger()
        assert issue_count(app) == 0  # nothing holds the articles or the week's key
    monkeypatch.undo()
    with app.app_context(), unit_of_work():
        assert digests.run_weekly(datetime(2026, 11, 30, 8, 0, tzinfo=UTC)) is not None


def test_a_process_killed_after_compose_leaves_no_draft(app, client):
    """A real process composes an issue and is SIGKILLed (by itself, so the moment is
    exact) before starting it: no cleanup runs, its database connection just drops."""
    add_subscribers(app, 2)
    add_article(app)
    script = ("import os, signal\n"
              "from newsletter import create_app\n"
              "from newsletter.issues import digests\n"
              "app = create_app({'TESTING': True})\n"
              "with app.app_context():\n"
              "    assert digests.compose() is not None\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    died = run(sys.executable, "-c", script, env=subprocess_env(app), timeout=60)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert issue_count(app) == 0
    with app.app_context(), unit_of_work():
        assert digests.send_now() is not None  # the articles and the key are free


# --- drafts: start or discard --------------------------------------------------------

def test_cli_lists_starts_and_discards_drafts(app, client, celery_worker, mailbox):
    add_subscribers(app, 3)
    add_article(app)
    runner = app.test_cli_runner()
    draft_id = legacy_draft(app)
    listed = runner.invoke(args=["digest", "list"])
    assert f"{draft_id}  draft" in listed.output
    # While the draft holds the articles, "send" has nothing new; "start" sends it.
    assert "Nothing new" in runner.invoke(args=["digest", "send"]).output
    started = runner.invoke(args=["digest", "start", str(draft_id), "--no-wait"])
    assert started.exit_code == 0 and "3 subscriber(s)" in started.output, started.output
    assert wait_until_sent(app, draft_id)["sent"] == 3
    again = runner.invoke(args=["digest", "start", str(draft_id)])
    assert again.exit_code == 1 and "not a draft" in again.output

    add_article(app, "Second story", "https://news.example.com/second")
    second = legacy_draft(app)
    discarded = runner.invoke(args=["digest", "discard", str(second)])
    assert discarded.exit_code == 0, discarded.output
    assert runner.invoke(args=["digest", "discard", "999999"]).exit_code == 1
    with app.app_context():
        assert db.session.get(Digest, second).status == DigestStatus.CANCELLED
        assert [a.title for a in digests.new_articles()] == ["Second story"]


def test_editor_starts_or_discards_a_draft_in_the_workspace(app, client, celery_worker,
                                                            mailbox):
    make_editor(app)
    login(client)
    add_subscribers(app, 2)
    add_article(app)
    draft_id = legacy_draft(app)
    page = client.get("/admin/digests").get_data(as_text=True)
    assert "never started" in page and f"/admin/digests/{draft_id}" in page
    report = client.get(f"/admin/digests/{draft_id}").get_data(as_text=True)
    assert f"/admin/digests/{draft_id}/start" in report
    assert f"/admin/digests/{draft_id}/discard" in report
    token = csrf_token_from(client, f"/admin/digests/{draft_id}")
    # The report page's button asks first, like every "send now": nothing starts yet.
    asked = client.post(f"/admin/digests/{draft_id}/start", data={"csrf_token": token})
    assert asked.status_code == 200
    question = asked.get_data(as_text=True)
    assert "to 2 readers?" in question and 'name="confirmed" value="2"' in question
    # A count that is not today's starts nothing and asks again.
    stale = client.post(f"/admin/digests/{draft_id}/start",
                        data={"csrf_token": token, "confirmed": "5"})
    assert stale.status_code == 409 and "to 2 readers?" in stale.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Digest, draft_id).status == DigestStatus.DRAFT
        assert not db.session.scalar(select(func.count()).select_from(Delivery))
    response = client.post(f"/admin/digests/{draft_id}/start",
                           data={"csrf_token": token, "confirmed": "2"})
    assert response.status_code == 302
    assert wait_until_sent(app, draft_id)["sent"] == 2
    # Started already: a second click changes nothing and says so.
    client.post(f"/admin/digests/{draft_id}/start", data={"csrf_token": token,
                                                          "confirmed": "2"})
    assert "cannot be started" in client.get(f"/admin/digests/{draft_id}").get_data(
        as_text=True)

    add_article(app, "Second story", "https://news.example.com/second")
    second = legacy_draft(app)
    client.post(f"/admin/digests/{second}/discard", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(Digest, second).status == DigestStatus.CANCELLED
    assert "Second story" in client.get("/admin/digests").get_data(as_text=True)
    assert len(mailbox.wait_for(2)) == 2


# --- cancel frees the articles and the key ----------------------------------------------

def test_cancel_then_send_again_with_the_same_articles(app, client, celery_worker, mailbox,
                                                       monkeypatch):
    monkeypatch.setitem(app.config, "SEND_BATCH_SIZE", 5)
    mailbox.delay = 0.05
    add_subscribers(app, 20)
    article_id = add_article(app)
    first = send_now(app)
    mailbox.wait_for(1)  # under way
    with app.app_context(), unit_of_work():
        assert digests.cancel(first)
    cancelled = wait_for_idle_ledger(app, first)
    assert cancelled["skipped"] > 0
    mailbox.delay = 0
    result = app.test_cli_runner().invoke(args=["digest", "send", "--no-wait"])
    assert "Nothing new" not in result.output and "to 20 subscriber(s)" in result.output
    with app.app_context():
        second = db.session.scalar(select(Digest).where(Digest.id != first))
        assert [a.id for a in second.articles] == [article_id]
        assert db.session.get(Digest, first).period_key is None  # the key is released
        second_id = second.id
    assert wait_until_sent(app, second_id)["sent"] == 20
    # And a second "send now" with nothing new still sends nothing.
    with app.app_context(), unit_of_work():
        assert digests.send_now() is None


def test_a_cancelled_scheduled_issue_frees_its_articles(app, client):
    add_subscribers(app, 1)
    add_article(app)
    with app.app_context(), unit_of_work():
        scheduled = digests.schedule(datetime.now(UTC) + timedelta(days=1))
        assert digests.cancel(scheduled.id)
        assert digests.schedule(datetime.now(UTC) + timedelta(days=1)) is not None


def test_a_cancelled_weekly_issue_keeps_its_week_but_frees_its_articles(app, client):
    add_subscribers(app, 1)
    add_article(app)
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with app.app_context(), unit_of_work():
        weekly = digests.run_weekly(monday)
        assert digests.cancel(weekly.id)
        # A duplicate, late trigger of the same week does not bring the issue back ...
        assert digests.run_weekly(monday + timedelta(minutes=5)) is None
        # ... but the editor can send the same articles by hand.
        by_hand = digests.send_now()
        assert by_hand is not None and by_hand.recipients == 1


# --- the weekly key is the scheduled time's ---------------------------------------------

def test_weekly_trigger_running_after_midnight_keys_on_sundays_week(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "DIGEST_SCHEDULE", "sun 23:59 Europe/Paris")
    add_subscribers(app, 1)
    add_article(app)
    sunday = datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)
    with app.app_context(), unit_of_work():
        late = digests.run_weekly(sunday + timedelta(minutes=2))  # Monday 00:01
        assert late.period_key == "weekly-2026-W48"
    add_article(app, "Next week's story", "https://news.example.com/next")
    with app.app_context(), unit_of_work():
        next_week = digests.run_weekly(sunday + timedelta(days=7))  # on time
        assert next_week is not None and next_week.period_key == "weekly-2026-W49"
        assert [a.title for a in next_week.articles] == ["Next week's story"]
