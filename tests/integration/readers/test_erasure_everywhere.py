"""An erasure is honoured by every process: a worker on a second host (a fresh instance
folder) and every command run on a restored database refuse the erased address, or
refuse to start; none generates a key of its own and forgets the erasure."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.readers import privacy
from tests.helpers import (
    ROOT,
    run,
    subprocess_env,
    subscribe_by_form,
    wait_for_subscribe_requests,
    wait_until,
)

FLASK = (sys.executable, "-m", "flask", "--app", "newsletter")
ERASED = "erased.reader@example.org"


def erase(app, email: str) -> None:
    with app.app_context():
        with unit_of_work():
            reader = Subscriber(email=email, email_normalized=email,
                                status=SubscriberStatus.ACTIVE)
            db.session.add(reader)
        with unit_of_work():
            assert privacy.erase_subscriber(reader.id)


def readers(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Subscriber))
        db.session.remove()
    return count


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--hostname", f"keys-{uuid.uuid4().hex[:8]}@%h"],
        env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def test_a_worker_on_a_fresh_instance_folder_never_mails_an_erased_address(
        app, clean_state, client, mailbox, tmp_path):
    erase(app, ERASED)
    assert subscribe_by_form(client, ERASED).status_code < 400
    env = subprocess_env(app, INSTANCE_PATH=str(tmp_path / "second-host"))
    env.pop("FLASK_DEBUG", None)

    # Started as an operator would on a second host, leaving the suppression key to be
    # generated: it stops at start, saying which setting is missing.
    keyless = start_worker({k: v for k, v in env.items() if k != "NEWSLETTER_SUPPRESSION_KEY"})
    try:
        wait_until(lambda: keyless.poll() is not None, 60,
                   "the worker without a suppression key to stop")
    finally:
        stop(keyless)
    said = keyless.stderr.read().strip().splitlines()
    assert keyless.returncode != 0
    assert len(said) == 1 and "NEWSLETTER_SUPPRESSION_KEY is not set" in said[0]

    worker = start_worker(env)  # the same host with the key from the settings
    try:
        wait_for_subscribe_requests(app, timeout=90)
    finally:
        stop(worker)
    assert mailbox.messages == []
    assert readers(app) == 1  # no pending row for the address either
    assert not (tmp_path / "second-host" / "suppression-key").exists()


def restore_copy(database_url: str, folder: Path) -> tuple[str, callable]:
    """A backup restored as a new database, the way an operator would (pg_dump and
    pg_restore on PostgreSQL, SQLite's backup API): its URL and how to drop it."""
    if database_url.startswith("sqlite"):
        copy = folder / "restored.db"
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as source, \
                sqlite3.connect(copy) as target:
            source.backup(target)
        return f"sqlite:///{copy}", lambda: None
    url = sqlalchemy.make_url(database_url)
    name = f"{url.database}_restore_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def libpq(database: str) -> str:
        return url.set(drivername="postgresql", database=database).render_as_string(
            hide_password=False)

    dump = folder / "backup.dump"
    dumped = run("pg_dump", "--format=custom", f"--file={dump}", libpq(url.database))
    assert dumped.returncode == 0, dumped.stderr
    restored = run("pg_restore", "--no-owner", f"--dbname={libpq(name)}", str(dump))
    assert restored.returncode == 0, restored.stderr

    def drop():
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def test_a_restored_database_keeps_every_erasure(app, clean_state, tmp_path):
    erase(app, ERASED)
    with app.app_context():
        db.session.remove()  # the backup sees every committed row
    restored_url, drop = restore_copy(app.config["DATABASE_URL"], tmp_path)
    try:
        env = subprocess_env(app, DATABASE_URL=restored_url,
                             INSTANCE_PATH=str(tmp_path / "restored-host"))
        current = run(*FLASK, "db", "current", env=env)
        assert current.returncode == 0 and "(head)" in current.stdout, current.stderr

        lines = tmp_path / "list.csv"
        lines.write_text(f"email\n{ERASED}\nnew.reader@example.org\n")
        checked = run(*FLASK, "subscribers", "import", str(lines), "--dry-run", "--here",
                      env=env)
        assert checked.returncode == 0, checked.stderr
        assert "would add 1," in checked.stdout  # the new reader only

        # Restored with a fresh key instead of the backed-up one: refuses to start.
        wrong = run(*FLASK, "subscribers", "import", str(lines), "--dry-run", "--here",
                    env={**env, "NEWSLETTER_SUPPRESSION_KEY": "f" * 64})
        assert wrong.returncode != 0 and "would add" not in wrong.stdout
        said = wrong.stderr.strip().splitlines()
        assert len(said) == 1 and "NEWSLETTER_SUPPRESSION_KEY is not the key" in said[0]
    finally:
        drop()
