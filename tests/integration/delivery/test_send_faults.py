"""Two worker processes on two separate workers against one ledger: leases that run
out mid-batch, a worker killed mid-send, a relay that goes away.

Duplicates and missing readers are counted from what the SMTP server received,
never from the ledger.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

from aiosmtpd.controller import Controller

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import DeliveryStatus, Digest, DigestStatus
from tests.factories import add_article, add_subscribers
from tests.helpers import (
    RecordingSMTPHandler,
    app_config,
    received_by,
    send_ledger,
    start_celery_worker,
    stop_processes,
    subprocess_env,
    sweep,
    sweep_like_beat_until_sent,
    wait_for_claimed_rows,
    wait_until,
)

IN_CI = os.environ.get("CI") == "true"


def twin_app(app, smtp_port: int | None = None, **settings):
    """An app configured like the worker subprocesses (same queue, same settings): what
    beat's sweep and an editor's clicks do in production."""
    from newsletter import create_app

    return create_app(app_config(app.config["DATABASE_URL"], app.config["REDIS_URL"],
                                 smtp_port or app.config["SMTP_PORT"], **settings))


def start_send(twin) -> int:
    with twin.app_context():
        with unit_of_work():
            digest = digests.send_now()
        assert digest is not None
        return digest.id


def sweep_until_sent(app, twin, digest_id: int, timeout: float) -> None:
    """What beat does every 30 seconds, every half second."""
    def swept_and_sent():
        with twin.app_context():
            sweep()
            return db.session.get(Digest, digest_id).status == DigestStatus.SENT

    wait_until(swept_and_sent, timeout, lambda: f"sent: {send_ledger(app, digest_id)[1]}",
               interval=0.5)


def test_lease_shorter_than_a_batch_gives_no_duplicates(app, client, mailbox):
    # Four batches share 5 messages/s: a batch of 10 takes ~8 s against a 3 s lease
    # (the configuration check passes: one batch alone takes 2 s). Without owned,
    # renewed claims the sweeper hands the unsent rows to another worker and both send.
    settings = dict(TASK_QUEUE=f"lease-{os.getpid()}", SEND_LEASE=3, SEND_BATCH_SIZE=10,
                    SEND_RATE=5, SEND_CONCURRENCY=4)
    env = subprocess_env(app, **settings)
    twin = twin_app(app, **settings)
    add_subscribers(app, 60)
    add_article(app)
    workers = [start_celery_worker(env, 2), start_celery_worker(env, 2)]
    try:
        digest_id = start_send(twin)
        sweep_until_sent(app, twin, digest_id, timeout=120)
    finally:
        stop_processes(*workers)

    _, counts, rows = send_ledger(app, digest_id)
    got = received_by(mailbox)
    assert len(rows) == 60 and counts["sent"] == 60, counts
    assert [email for email, _ in rows if got[email] != 1] == []  # 0 missing, 0 twice
    assert sum(got.values()) == 60
    assert max(delivery.attempts for _, delivery in rows) == 1


def readers_waiting(app, mailbox, settings: dict):
    """A worker's environment and a twin app with these settings, readers and an
    article waiting, and a relay slow enough to stop a send halfway."""
    mailbox.delay = 0.02
    readers = 300 if IN_CI else 600
    add_subscribers(app, readers)
    add_article(app)
    return subprocess_env(app, **settings), twin_app(app, **settings), readers


def test_sigkill_of_one_worker_mid_send_loses_nobody(app, client, mailbox, smtp_pipelining):
    settings = dict(TASK_QUEUE=f"kill-{os.getpid()}", SEND_LEASE=3, SEND_BATCH_SIZE=25,
                    SEND_CONCURRENCY=4)
    env, twin, readers = readers_waiting(app, mailbox, settings)
    victim = start_celery_worker(env, 2)
    survivor = None
    try:
        digest_id = start_send(twin)
        mailbox.wait_for(60, timeout=60)
        survivor = start_celery_worker(env, 2)
        mailbox.wait_for(120, timeout=60)
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and both pool processes, mid-message
        victim.wait(timeout=10)
        sweep_until_sent(app, twin, digest_id, timeout=180)
    finally:
        stop_processes(victim, survivor)

    _, counts, rows = send_ledger(app, digest_id)
    got = received_by(mailbox)
    missing = [email for email, _ in rows if got[email] == 0]
    twice = [email for email, _ in rows if got[email] > 1]
    assert len(rows) == readers
    assert missing == []
    assert len(twice) <= 2  # at most one per killed pool process
    assert max(got.values()) <= 2
    assert counts["unknown"] == 0 and counts["sent"] == readers, counts
    # Whoever got two copies is on the record as resent after a crash.
    resent = {email for email, delivery in rows if delivery.resent_after_crash}
    assert set(twice) <= resent and counts["resent_after_crash"] == len(resent) <= 2
    print(f"\nafter SIGKILL: {len(resent)} resent, {len(twice)} received twice")


def test_sigkill_of_the_only_bulk_worker_recovers_within_a_minute_of_its_restart(
        app, client, mailbox):
    # The default lease (5 minutes): only the claim's heartbeat can free the rows in time.
    settings = dict(TASK_QUEUE=f"killall-{os.getpid()}", SEND_BATCH_SIZE=50,
                    SEND_CONCURRENCY=2)
    env, twin, readers = readers_waiting(app, mailbox, settings)
    worker = start_celery_worker(env, 2, bulk_only=True)
    try:
        digest_id = start_send(twin)
        mailbox.wait_for(readers // 4, timeout=60)
        wait_for_claimed_rows(app, digest_id, 10)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool processes, mid-message
        worker.wait(timeout=10)
        stalled = send_ledger(app, digest_id)[1]
        worker = start_celery_worker(env, 2, bulk_only=True)
        restarted = time.monotonic()
        released = sweep_like_beat_until_sent(app, twin, digest_id, timeout=60)
        recovered_in = time.monotonic() - restarted
    finally:
        stop_processes(worker)

    _, counts, rows = send_ledger(app, digest_id)
    got = received_by(mailbox)
    missing = [email for email, _ in rows if got[email] == 0]
    twice = [email for email, _ in rows if got[email] > 1]
    assert stalled["sending"] > 0  # the killed worker held rows under a lease of minutes
    assert missing == [] and counts["sent"] == readers, counts
    assert released >= stalled["sending"]
    resent = {email for email, delivery in rows if delivery.resent_after_crash}
    assert set(twice) <= resent and len(resent) <= 2  # one in flight per pool process
    print(f"\nafter SIGKILL of the only worker: sent {recovered_in:.1f} s after the restart, "
          f"{released} row(s) taken back, {len(twice)} received twice")


def test_sigterm_to_the_whole_process_group_mid_send_hands_the_batch_back(
        app, client, mailbox):
    # systemd's default stop: SIGTERM to the worker and to each pool process at once.
    settings = dict(TASK_QUEUE=f"term-{os.getpid()}", SEND_BATCH_SIZE=50,
                    SEND_CONCURRENCY=2)
    env, twin, readers = readers_waiting(app, mailbox, settings)
    worker = start_celery_worker(env, 2, bulk_only=True)
    try:
        digest_id = start_send(twin)
        mailbox.wait_for(readers // 4, timeout=60)
        wait_for_claimed_rows(app, digest_id, 10)
        os.killpg(worker.pid, signal.SIGTERM)
        asked = time.monotonic()
        worker.wait(timeout=60)
        stopped_in = time.monotonic() - asked
        _, at_stop, _ = send_ledger(app, digest_id)
        worker = start_celery_worker(env, 2, bulk_only=True)
        released = sweep_like_beat_until_sent(app, twin, digest_id, timeout=60)
    finally:
        stop_processes(worker)

    _, counts, rows = send_ledger(app, digest_id)
    got = received_by(mailbox)
    # Nothing was cut mid-message: no row left claimed, none in flight to resend.
    assert at_stop["sending"] == 0 and at_stop["remaining"] > 0, at_stop
    assert released == 0
    assert [email for email, _ in rows if got[email] != 1] == []  # 0 missing, 0 twice
    assert sum(got.values()) == readers and counts["sent"] == readers, counts
    assert counts["resent_after_crash"] == 0 and counts["unknown"] == 0
    print(f"\nafter SIGTERM to the process group: stopped in {stopped_in:.1f} s, "
          f"{at_stop['remaining']} row(s) handed back, 0 duplicates")


@contextmanager
def private_relay(port: int | None = None):
    from newsletter.devstack import free_port

    handler = RecordingSMTPHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def test_relay_outage_pauses_the_send_then_resume_completes_it(app, client):
    outage = 15 if IN_CI else 120  # seconds the relay refuses connections
    with private_relay() as relay:
        handler, port = relay.handler, relay.port
        handler.delay = 0.01
        settings = dict(TASK_QUEUE=f"outage-{os.getpid()}", SEND_BATCH_SIZE=20,
                        SEND_CONCURRENCY=2, SEND_BREAKER_FAILURES=3, SEND_BREAKER_WINDOW=6,
                        SMTP_PORT=port)
        env = subprocess_env(app, **settings)
        twin = twin_app(app, **settings)
        add_subscribers(app, 400)
        add_article(app)
        worker = start_celery_worker(env, 2)
        try:
            digest_id = start_send(twin)
            handler.wait_for(100, timeout=60)
        except BaseException:
            stop_processes(worker)
            raise
    # The relay is gone (connections refused) until it comes back on the same port.
    try:
        outage_ends = time.monotonic() + outage
        wait_until(lambda: send_ledger(app, digest_id)[0].status == DigestStatus.PAUSED, 60,
                   lambda: f"a pause: {send_ledger(app, digest_id)[1]}", interval=0.5)
        paused, counts, _ = send_ledger(app, digest_id)
        assert "relay could not be reached" in paused.pause_reason
        assert counts["failed"] == 0 and counts["pending"] > 0 and counts["sending"] == 0
        # The outage lasts its time in the worker processes: a clock here cannot move it.
        time.sleep(max(0.0, outage_ends - time.monotonic()))
        assert send_ledger(app, digest_id)[1]["failed"] == 0
        with private_relay(port) as relay, twin.app_context():
            relay.handler.messages.extend(handler.messages)
            with unit_of_work():
                assert digests.resume(digest_id)
            sweep_until_sent(app, twin, digest_id, timeout=120)
            got = received_by(relay.handler)
    finally:
        stop_processes(worker)

    final, counts, rows = send_ledger(app, digest_id)
    assert final.status == DigestStatus.SENT and final.pause_reason is None
    assert counts["failed"] == 0 and counts["sent"] + counts["unknown"] == 400, counts
    # A message cut when the relay died mid-DATA is "unknown" (maybe delivered), at
    # most one per pool process; every other reader got the issue exactly once.
    assert counts["unknown"] <= 2
    for email, delivery in rows:
        if delivery.status == DeliveryStatus.SENT:
            assert got[email] == 1, email
