"""A worker killed mid-send: nobody is missed, nobody gets a copy twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber
from tests.conftest import ROOT, run, subprocess_env
from tests.integration.test_digests import add_article, add_subscribers


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
         "prefork", "--concurrency", "1", "--loglevel", "WARNING"],
        env=env, cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def test_sigkill_worker_mid_send_loses_and_repeats_nothing(app, client, mailbox):
    # Its own queue, so the in-process test worker cannot take these tasks.
    env = subprocess_env(app, TASK_QUEUE=f"faults-{os.getpid()}", SEND_LEASE=3,
                         SEND_BATCH_SIZE=50)
    mailbox.delay = 0.02
    add_subscribers(app, 300)
    add_article(app)
    sent = run(sys.executable, "-m", "flask", "--app", "newsletter", "digest", "send",
               "--no-wait", env=env, timeout=60)
    assert sent.returncode == 0, sent.stderr
    with app.app_context():
        digest_id = db.session.scalar(select(Digest.id))

    first = start_worker(env)
    second = None
    try:
        mailbox.wait_for(60, timeout=60)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool child, mid-message
        first.wait(timeout=10)
        second = start_worker(env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with app.app_context():
                if db.session.get(Digest, digest_id).status == DigestStatus.SENT:
                    break
            # What beat does every 30 seconds: take back the dead worker's lease.
            swept = run(sys.executable, "-m", "flask", "--app", "newsletter", "digest", "sweep",
                        env=env, timeout=60)
            assert swept.returncode == 0, swept.stderr
            time.sleep(1)
    finally:
        for worker in (first, second):
            if worker and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)

    with app.app_context():
        assert db.session.get(Digest, digest_id).status == DigestStatus.SENT
        rows = db.session.execute(select(Subscriber.email, Delivery.status).join(
            Delivery, Delivery.subscriber_id == Subscriber.id)).all()
    received = Counter(message["To"].addresses[0].addr_spec for message in mailbox.messages)
    statuses = Counter(status for _, status in rows)
    assert len(rows) == 300
    assert set(statuses) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    assert statuses[DeliveryStatus.UNKNOWN] <= 1  # at most the one message in flight
    for email, status in rows:
        if status == DeliveryStatus.SENT:
            assert received[email] == 1, email
        else:
            assert received[email] <= 1, email
    print(f"\nafter SIGKILL: {dict(statuses)}")
