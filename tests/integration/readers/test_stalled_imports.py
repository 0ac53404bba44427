"""An import whose worker died does not show "running" for ever: beat's sweeper fails
it with a message the editor sees, and the editor runs it again."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from newsletter import jobs
from newsletter.db import commit_each, unit_of_work
from newsletter.extensions import db
from newsletter.models import ImportJob, ImportStatus, Subscriber, utcnow
from newsletter.queue import send_task_now
from newsletter.readers import subscriber_lists
from tests.factories import make_editor
from tests.helpers import csrf_token_from, login, wait_until
from workers.tasks import fail_stalled_imports

CONSENT = "double opt-in at OldTool"
ROWS = 2500  # three chunks


def job_state(app, job_id: int) -> tuple[ImportStatus, str | None]:
    with app.app_context():
        job = subscriber_lists.import_job(job_id)
        state = job.status, job.error
        db.session.remove()
        return state


def readers(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Subscriber))
        db.session.remove()
        return count


def test_an_import_whose_worker_died_is_failed_and_can_be_run_again(app, client,
                                                                    celery_worker):
    make_editor(app)
    login(client)
    data = "email\n" + "".join(f"r{n}@example.com\n" for n in range(ROWS))
    with app.app_context():
        upload = subscriber_lists.keep_upload(data.encode())
        # A worker claims the job, writes its first chunk and dies. The task published
        # for the job reaches the live worker, which finds it claimed and leaves it.
        with unit_of_work():
            job_id = subscriber_lists.start_import_job(upload, CONSENT, False, None).id
            dead_worker = subscriber_lists.import_job_steps(job_id)
            next(dead_worker)  # the claim, committed with the job
        with unit_of_work():
            next(dead_worker)  # the first chunk and its progress
        db.session.remove()
    assert readers(app) == 1000
    started = utcnow()

    with time_machine.travel(started + timedelta(minutes=9), tick=True):
        with app.app_context():  # not silent long enough yet
            fail_stalled_imports()
        assert job_state(app, job_id)[0] == ImportStatus.RUNNING
    with time_machine.travel(started + subscriber_lists.IMPORT_STALLED_AFTER
                             + timedelta(seconds=30), tick=True):
        with app.app_context():
            assert send_task_now(jobs.FAIL_STALLED_IMPORTS)  # what beat sends each minute
        status, error = wait_until(
            lambda: (state := job_state(app, job_id))[0] == ImportStatus.FAILED and state,
            what="the sweeper to fail the stalled job")
        assert "went away" in error
        page = client.get(f"/admin/subscribers/import/{job_id}").get_data(as_text=True)
        assert "could not be imported" in page and "went away" in page
        assert 'http-equiv="refresh"' not in page

        # The worker that was thought dead wakes up: the job stays failed and its
        # chunk in hand is not written.
        with app.app_context():
            commit_each(dead_worker)
            db.session.remove()
        assert job_state(app, job_id)[0] == ImportStatus.FAILED
        assert readers(app) == 1000

        # The editor runs it again: what the first run added counts as already known.
        token = csrf_token_from(client, "/admin/subscribers/import")
        again = client.post("/admin/subscribers/import", data={
            "csrf_token": token, "upload": upload, "consent": CONSENT, "action": "import"})
        retry_id = int(again.headers["Location"].rsplit("/", 1)[1])
        wait_until(lambda: job_state(app, retry_id)[0] == ImportStatus.DONE,
                   what="the import run again")
    with app.app_context():
        retry = db.session.get(ImportJob, retry_id)
        assert (retry.valid, retry.duplicates) == (ROWS - 1000, 1000)
    assert readers(app) == ROWS
