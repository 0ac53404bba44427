"""PostgreSQL stopped hard (``pg_ctl stop -m immediate``, what a crash or an OOM kill
does) and started again 5 s later, on a throw-away cluster this module starts: a send
loses nobody and duplicates at most the message each running batch had in flight
(flagged), and every subscribe request answered 202 ends in a confirmation mail,
the others are told to retry (503 with Retry-After), never a 500.

Runs wherever PostgreSQL's initdb is installed, and must run in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from newsletter.devstack import free_port
from tests.factories import add_article, add_subscribers
from tests.helpers import (
    app_config,
    received_by,
    send_ledger,
    start_celery_worker,
    stop_processes,
    subprocess_env,
    sweep_like_beat_until_sent,
    wait_until,
)

PG_BIN = Path(shutil.which("initdb") or "/usr/local/bin/initdb").parent
OUTAGE = 5  # seconds between the hard stop and the start
# What synchronous_commit=off may lose: up to 3 x wal_writer_delay (200 ms), with margin.
LOSS_WINDOW = 0.7


@pytest.fixture(scope="module", autouse=True)
def postgres_binaries():
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the database crash tests: install PostgreSQL's server")
        pytest.skip("PostgreSQL's initdb is not installed")


class Cluster:
    """A PostgreSQL server of its own, in a temporary folder, on a free port. initdb
    refuses to run as root, so as root it runs as the `postgres` user."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_owner = []
        if os.geteuid() == 0:
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_owner, str(PG_BIN / tool), *args], check=True,
                       capture_output=True, cwd=self.folder)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
                  "start")

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_owner, str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def crash_app(redis_url: str, smtp_port: int, **settings):
    """A migrated app on a fresh throw-away cluster, and the cluster."""
    from flask_migrate import upgrade

    from newsletter import create_app
    from newsletter.extensions import db

    cluster = Cluster()
    try:
        cluster.start()
        app = create_app(app_config(cluster.url, redis_url, smtp_port, **settings))
        with app.app_context():
            upgrade()
        yield app, cluster
        with app.app_context():
            db.engine.dispose()
    finally:
        cluster.remove()


def restart_hard(cluster: Cluster) -> None:
    cluster.crash()
    time.sleep(OUTAGE)  # the outage itself: what the test is about, not a wait for a result
    cluster.start()


def test_a_send_survives_a_hard_database_restart_at_a_fifth(redis_url, smtp_server, mailbox):
    from newsletter.db import unit_of_work
    from newsletter.issues import digests

    readers = 3000
    settings = dict(TASK_QUEUE=f"pgcrash-{os.getpid()}", SEND_BATCH_SIZE=100,
                    SEND_CONCURRENCY=2)
    with crash_app(redis_url, smtp_server.port, **settings) as (app, cluster):
        add_subscribers(app, readers)
        add_article(app)
        worker = start_celery_worker(subprocess_env(app), 2, bulk_only=True)
        try:
            with app.app_context(), unit_of_work():
                digest_id = digests.send_now().id
            mailbox.wait_for(readers // 5, timeout=90)
            restart_hard(cluster)
            restarted = time.monotonic()
            released = sweep_like_beat_until_sent(app, app, digest_id, timeout=90)
            recovered_in = time.monotonic() - restarted
        finally:
            stop_processes(worker)
        _, counts, rows = send_ledger(app, digest_id)

    got = received_by(mailbox)
    missing = [email for email, _ in rows if got[email] == 0]
    twice = [email for email, _ in rows if got[email] > 1]
    assert len(rows) == readers and missing == [], counts
    assert counts["sent"] + counts["unknown"] == readers, counts
    # At most the message each batch had in flight, and each one is on the record.
    resent = {email for email, delivery in rows if delivery.resent_after_crash}
    assert len(twice) <= 2 and set(twice) <= resent, (twice, resent)
    print(f"\nafter a hard PostgreSQL restart: sent {recovered_in:.1f} s after the start, "
          f"{released} row(s) taken back, {len(twice)} received twice, "
          f"{len(resent)} flagged as resent")


def test_subscribe_burst_while_the_database_restarts(redis_url, smtp_server, mailbox):
    from workers.tasks import send_owed_mails

    settings = dict(TASK_QUEUE=f"pgburst-{os.getpid()}")
    with crash_app(redis_url, smtp_server.port, **settings) as (app, cluster):
        worker = start_celery_worker(subprocess_env(app), 2)
        answers: dict[str, tuple[int, str | None, float]] = {}  # status, Retry-After, when
        try:
            client = app.test_client()
            requests, crashed_at = 300, 60
            outage_ends = None
            for n in range(requests):
                if n == crashed_at:
                    crash_time = time.monotonic()
                    cluster.crash()
                    outage_ends = time.monotonic() + OUTAGE
                elif outage_ends and time.monotonic() >= outage_ends:
                    cluster.start()
                    outage_ends = None
                email = f"burst{n}@d{n}.example.org"  # one domain each: no domain cap
                response = client.post("/api/v1/subscriptions", json={"email": email})
                answers[email] = (response.status_code, response.headers.get("Retry-After"),
                                  time.monotonic())
                # Paced like a burst of readers, not a loop: about 50 in the outage.
                time.sleep(OUTAGE / 50 if outage_ends else 0.02)
            if outage_ends:
                cluster.start()
            accepted = {email for email, (status, _, _) in answers.items() if status == 202}
            # Subscribe requests commit with synchronous_commit=off (docs/readers.md): a
            # crash can lose those answered in the last moments before it, nothing else.
            may_be_lost = {email for email in accepted
                           if crash_time - LOSS_WINDOW <= answers[email][2] <= crash_time}

            def confirmed():
                with app.app_context():
                    send_owed_mails()  # what beat does every minute: re-publish owed work
                return accepted - may_be_lost <= set(received_by(mailbox))

            wait_until(confirmed, 90, lambda: f"{len(accepted - set(received_by(mailbox)))} "
                       "confirmation(s)", interval=2)
        finally:
            stop_processes(worker)

    statuses = {status for status, _, _ in answers.values()}
    refused = [retry for status, retry, _ in answers.values() if status == 503]
    lost = accepted - set(received_by(mailbox))
    assert statuses <= {202, 503}, statuses
    assert lost <= may_be_lost
    assert refused and all(retry == "5" for retry in refused)
    assert len(accepted) > len(refused)
    print(f"\nsubscribe burst over a hard PostgreSQL restart: {len(accepted)} accepted, "
          f"{len(accepted) - len(lost)} confirmed, {len(lost)} lost within the "
          f"synchronous_commit=off window; {len(refused)} told to retry (503)")
