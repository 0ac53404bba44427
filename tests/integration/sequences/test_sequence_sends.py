"""Sequences on the real stack: a Celery worker, Redis, an SMTP server, the ledger.

The beat's run is called here with the moment it runs at (the steps' clock), so a
20-second step is due without waiting 20 seconds; the sending is the worker's.
Who received what is counted from the SMTP server, never from the ledger.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

from sqlalchemy import select, update

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import (
    DeliveryStatus,
    Digest,
    DigestStatus,
    Enrolment,
    EnrolmentState,
    SequenceStep,
    Subscriber,
    utcnow,
)
from newsletter.sequences import enrolment, runner, steps
from tests.factories import add_subscribers, deliver
from tests.helpers import (
    app_config,
    received_by,
    send_ledger,
    start_celery_worker,
    stop_processes,
    subprocess_env,
    sweep,
    wait_for_claimed_rows,
    wait_until,
)

IN_CI = os.environ.get("CI") == "true"
WELCOME = "Welcome aboard\n\nThanks for **confirming**. [Our archive](https://news.example.com/a)."
TIPS = "Three tips\n\n- read\n- share\n- write back"


def make_sequence(app, *delays: str, name: str = "welcome") -> list[int]:
    """A sequence with one step per delay; the steps' issue ids."""
    with app.app_context(), unit_of_work():
        steps.create_sequence(name)
        return [steps.add_step(name, delay, f"Step {n}", WELCOME if n == 1 else TIPS).digest_id
                for n, delay in enumerate(delays, start=1)]


def confirm_readers(app, count: int, prefix: str = "reader") -> tuple[list[int], object]:
    """Readers who confirmed just now (after the sequence was made); ids and the moment."""
    ids = add_subscribers(app, count, prefix)
    confirmed = utcnow()
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).values(confirmed_at=confirmed))
    return ids, confirmed


def run_at(app, moment) -> dict:
    """Beat's sequence run, at ``moment``."""
    with app.app_context():
        done = {}
        for sequence_id in runner.sequence_ids():
            with unit_of_work():
                done = runner.run(sequence_id, now=moment)
        return done


def enrolments(app) -> list[tuple]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(Enrolment.subscriber_id, Enrolment.state, Enrolment.passed_position)
            .order_by(Enrolment.subscriber_id))]


def rows_final(app, digest_id: int, expected: int):
    def final():
        with app.app_context():
            counts = digests.progress(digest_id)
        return counts if counts["total"] == expected and counts["remaining"] == 0 else None
    return final


def test_a_two_step_sequence_reaches_a_reader_once_each_in_order(app, client, celery_worker,
                                                                 mailbox):
    first, second = make_sequence(app, "0s", "20s")
    _, entered = confirm_readers(app, 1)

    assert run_at(app, entered)["queued"] == 1  # step 1 is due at once
    [mail] = mailbox.wait_for(1)
    assert mail["Subject"] == "Step 1"
    body = mail.get_body(("html",)).get_content()
    assert "<strong>confirming</strong>" in body
    assert 'href="http://localhost/r/' in body  # the article link is tracked
    assert 'href="https://news.example.com/a"' not in body
    # The headers of every bulk mail: one-click unsubscribe, List-Id, VERP, Feedback-ID.
    assert "One-Click" in mail["List-Unsubscribe-Post"]
    assert mail["List-Unsubscribe"].startswith("<http://localhost/unsubscribe/")
    assert mail["List-Id"] and mail["Feedback-ID"]
    assert wait_until(rows_final(app, first, 1))["sent"] == 1

    # 19 s in: step 1 is passed, step 2 not due yet.
    done = run_at(app, entered + timedelta(seconds=19))
    assert done["advanced"] == 1 and done["queued"] == 0
    assert enrolments(app)[0][1:] == (EnrolmentState.WAITING, 1)
    assert run_at(app, entered + timedelta(seconds=20))["queued"] == 1
    messages = mailbox.wait_for(2)
    assert [m["Subject"] for m in messages] == ["Step 1", "Step 2"]
    assert wait_until(rows_final(app, second, 1))["sent"] == 1

    # Later runs send nothing more: the reader completes.
    for seconds in (30, 60, 3600):
        run_at(app, entered + timedelta(seconds=seconds))
    assert enrolments(app)[0][1:] == (EnrolmentState.COMPLETED, 2)
    assert len(mailbox.messages) == 2
    with app.app_context():  # the steps' sends stay open for the readers to come
        assert {db.session.get(Digest, d).status for d in (first, second)} == {
            DigestStatus.SENDING}
        # Never in the public archive.
        assert client.get(f"/archive/{first}").status_code == 404


def test_a_reader_who_unsubscribes_after_step_one_gets_no_step_two(app, client, celery_worker,
                                                                   mailbox):
    first, second = make_sequence(app, "0s", "20s")
    _, entered = confirm_readers(app, 2)
    run_at(app, entered)
    messages = mailbox.wait_for(2)
    wait_until(rows_final(app, first, 2))
    leaver = next(m for m in messages if m["To"].addresses[0].addr_spec == "reader0@example.com")
    # The mail's own one-click unsubscribe, as a mail client sends it.
    url = leaver["List-Unsubscribe"].strip("<>").removeprefix("http://localhost")
    assert client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    done = run_at(app, entered + timedelta(seconds=25))
    assert done["left"] == 1
    run_at(app, entered + timedelta(seconds=26))
    mailbox.wait_for(3)
    wait_until(rows_final(app, second, 1))
    run_at(app, entered + timedelta(seconds=60))
    got = received_by(mailbox)
    assert got == {"reader0@example.com": 1, "reader1@example.com": 2}
    states = dict((row[0], row[1]) for row in enrolments(app))
    assert sorted(states.values()) == [EnrolmentState.COMPLETED, EnrolmentState.LEFT]


def test_readers_from_before_the_sequence_join_only_on_purpose(app, client, mailbox):
    add_subscribers(app, 3, "old")  # confirmed long ago (or never recorded)
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).values(confirmed_at=utcnow() - timedelta(days=9)))
    make_sequence(app, "1h")
    now = utcnow()
    assert run_at(app, now)["entered"] == 0
    assert enrolments(app) == []
    result = app.test_cli_runner().invoke(args=["sequences", "enroll", "welcome", "--existing"])
    assert result.exit_code == 0, result.output
    assert "enrolled 3 reader(s)" in result.output
    # They entered now: the 1-hour step is not due at once.
    assert run_at(app, utcnow())["queued"] == 0
    assert run_at(app, utcnow() + timedelta(hours=1, seconds=1))["queued"] == 3


def test_editing_a_step_never_resends_it_and_a_new_step_reaches_who_has_not_passed_it(
        app, client, celery_worker, mailbox):
    [first] = make_sequence(app, "0s")
    _, entered = confirm_readers(app, 1)
    run_at(app, entered)
    mailbox.wait_for(1)
    wait_until(rows_final(app, first, 1))
    with app.app_context(), unit_of_work():
        step = db.session.scalar(select(SequenceStep))
        steps.edit_step(step.id, "0s", "Step 1, better", "New words")
        steps.add_step("welcome", "10s", "Step 2", TIPS)
    for seconds in (1, 2, 11):
        run_at(app, entered + timedelta(seconds=seconds))
    messages = mailbox.wait_for(2)
    run_at(app, entered + timedelta(seconds=60))
    assert [m["Subject"] for m in messages] == ["Step 1", "Step 2"]
    assert len(mailbox.messages) == 2


def test_a_paused_reader_gets_the_step_when_the_pause_ends(app, client, mailbox):
    [first] = make_sequence(app, "0s")
    _, entered = confirm_readers(app, 1)
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).values(paused_until=entered + timedelta(days=7)))
    assert run_at(app, entered + timedelta(days=1))["queued"] == 0
    assert run_at(app, entered + timedelta(days=7, seconds=1))["queued"] == 1
    _, counts, _ = send_ledger(app, first)
    assert counts["pending"] == 1


def twin_app(app, **settings):
    from newsletter import create_app

    return create_app(app_config(app.config["DATABASE_URL"], app.config["REDIS_URL"],
                                 app.config["SMTP_PORT"], **settings))


def test_two_workers_and_one_killed_mid_step_lose_nobody_and_flag_any_second_copy(
        app, client, mailbox):
    settings = dict(TASK_QUEUE=f"seqkill-{os.getpid()}", SEND_LEASE=3, SEND_BATCH_SIZE=25,
                    SEND_CONCURRENCY=4)
    env, twin = subprocess_env(app, **settings), twin_app(app, **settings)
    readers = 300 if IN_CI else 500
    mailbox.delay = 0.02  # slow enough that the kill lands mid-step
    [first] = make_sequence(twin, "0s")
    confirm_readers(app, readers)
    victim = start_celery_worker(env, 2)
    survivor = start_celery_worker(env, 2)
    try:
        run_at(twin, utcnow())
        wait_for_claimed_rows(app, first, 2)
        mailbox.wait_for(readers // 4, timeout=60)
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its pool processes
        victim.wait(timeout=10)

        def swept_and_final():
            with twin.app_context():
                sweep()
            return rows_final(app, first, readers)()

        wait_until(swept_and_final, 180, lambda: f"every row final: {send_ledger(app, first)[1]}",
                   interval=0.5)
    finally:
        stop_processes(victim, survivor)

    _, counts, rows = send_ledger(app, first)
    got = received_by(mailbox)
    assert [email for email, _ in rows if got[email] == 0] == []  # nobody lost
    twice = [email for email, _ in rows if got[email] > 1]
    assert len(twice) <= 2 and max(got.values()) <= 2  # at most one per killed pool process
    assert counts["sent"] == readers and counts["unknown"] == 0, counts
    resent = {email for email, delivery in rows if delivery.resent_after_crash}
    assert set(twice) <= resent  # a second copy is always on the record
    # Every reader moves on exactly once.
    run_at(twin, utcnow())
    assert {state for _, state, _ in enrolments(app)} == {EnrolmentState.COMPLETED}
    print(f"\nsequence step after SIGKILL: {len(resent)} resent, {len(twice)} received twice")


def test_a_step_row_is_written_once_however_often_the_run_repeats(app, client):
    [first] = make_sequence(app, "0s")
    _, entered = confirm_readers(app, 5)
    for _ in range(3):
        run_at(app, entered)
    with app.app_context():
        # Racing runs: the loser's move finds no waiting enrolment and writes nothing.
        waiting = list(db.session.scalars(select(Enrolment.id)))
        assert enrolment.move(waiting, enrolment.Move.QUEUE, current_step_id=1) == []
        db.session.rollback()
    _, counts, rows = send_ledger(app, first)
    assert counts["total"] == 5 and counts["pending"] == 5
    assert {delivery.status for _, delivery in rows} == {DeliveryStatus.PENDING}


def test_a_topics_sequence_takes_in_readers_who_choose_the_topic_after_it_was_made(app, client):
    from newsletter.content import topics

    ids = add_subscribers(app, 3, "old")
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).values(confirmed_at=utcnow() - timedelta(days=9)))
        asia, europe = topics.create_topic("asia", "Asia"), topics.create_topic("europe", "Europe")
        for subscriber_id in ids[:2]:  # two readers held Asia before the sequence existed
            topics.set_reader_topics(db.session.get(Subscriber, subscriber_id), [asia])
        steps.create_sequence("asia-intro", "asia")
        steps.add_step("asia-intro", "0s", "Welcome to Asia", WELCOME)
    assert run_at(app, utcnow())["entered"] == 0  # holding it already is not entering
    with app.app_context(), unit_of_work():
        asia, europe = topics.get_topic("asia"), topics.get_topic("europe")
        # An old holder adds another topic: Asia keeps its old choice, no entry.
        topics.set_reader_topics(db.session.get(Subscriber, ids[0]), [asia, europe])
        # A reader who never had Asia chooses it now: entry.
        topics.set_reader_topics(db.session.get(Subscriber, ids[2]), [asia])
    done = run_at(app, utcnow())
    assert done["entered"] == 1 and done["queued"] == 1
    assert [row[0] for row in enrolments(app)] == [ids[2]]


def test_a_bounce_or_a_complaint_about_a_step_takes_the_reader_out(app, client, celery_worker,
                                                                   mailbox):
    first, second = make_sequence(app, "0s", "20s")
    ids, entered = confirm_readers(app, 3)
    run_at(app, entered)
    mailbox.wait_for(3)
    wait_until(rows_final(app, first, 3))
    # Reports come back through the step's own VERP address, as for an issue.
    assert "bounced" in deliver(app, "exchange_hard", first, ids[0],
                                recipient="reader0@example.com").summary
    deliver(app, "arf_complaint", first, ids[1], recipient="reader1@example.com")
    assert run_at(app, entered + timedelta(seconds=21))["left"] == 2
    run_at(app, entered + timedelta(seconds=22))
    mailbox.wait_for(4)
    wait_until(rows_final(app, second, 1))
    assert received_by(mailbox) == {"reader0@example.com": 1, "reader1@example.com": 1,
                                    "reader2@example.com": 2}
    states = {subscriber_id: state for subscriber_id, state, _ in enrolments(app)}
    assert states[ids[0]] == states[ids[1]] == EnrolmentState.LEFT


def test_a_step_moved_after_a_readers_place_is_never_sent_twice(app, client, celery_worker,
                                                                 mailbox):
    first, _ = make_sequence(app, "0s", "1h")
    _, entered = confirm_readers(app, 1)
    run_at(app, entered)
    mailbox.wait_for(1)
    wait_until(rows_final(app, first, 1))
    run_at(app, entered + timedelta(seconds=1))  # past step 1
    with app.app_context(), unit_of_work():
        had = db.session.scalar(select(SequenceStep.id).where(SequenceStep.digest_id == first))
        assert steps.move_step(had, +1)  # the step they had is now the next one
    for seconds in (3601, 3602, 3603):
        run_at(app, entered + timedelta(seconds=seconds))
    assert enrolments(app)[0][1] == EnrolmentState.COMPLETED
    _, counts, _ = send_ledger(app, first)
    assert counts["total"] == 1 and len(mailbox.messages) == 1


def test_a_step_whose_sending_was_cancelled_is_passed_over(app, client):
    first, second = make_sequence(app, "0s", "0s")
    _, entered = confirm_readers(app, 2)
    with app.app_context(), unit_of_work():
        assert digests.cancel(first)
    assert run_at(app, entered)["queued"] == 2
    _, counts, rows = send_ledger(app, second)
    assert {delivery.digest_id for _, delivery in rows} == {second}
    assert counts["pending"] == 2


def test_a_run_looks_only_at_readers_since_the_last_less_a_margin(app, client):
    from newsletter.models import Sequence
    from newsletter.sequences.enrolment import ENTRY_MARGIN

    make_sequence(app, "1d")
    now = utcnow()
    with app.app_context(), unit_of_work():
        db.session.execute(update(Sequence).values(created_at=now - timedelta(hours=2)))
    run_at(app, now)
    late, stale = add_subscribers(app, 2)
    with app.app_context(), unit_of_work():
        # Stamped before the last run but committed after it: still found.
        db.session.execute(update(Subscriber).where(Subscriber.id == late).values(
            confirmed_at=now - ENTRY_MARGIN + timedelta(minutes=1)))
        # Older than the margin: the last run saw it (had it been there), this one does not.
        db.session.execute(update(Subscriber).where(Subscriber.id == stale).values(
            confirmed_at=now - ENTRY_MARGIN - timedelta(minutes=1)))
    assert run_at(app, now + timedelta(seconds=15))["entered"] == 1
    assert [row[0] for row in enrolments(app)] == [late]

