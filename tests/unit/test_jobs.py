"""The job registry: every task the app names, routes or schedules is declared once
and registered with Celery under that name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from newsletter import create_app, jobs

PACKAGE = Path(__file__).resolve().parents[2] / "newsletter"
ENQUEUERS = {"enqueue_after_commit", "send_task_now", "wake", "woken"}

# Names sit in Redis queues and in beat schedules on running systems: they never change.
STABLE_NAMES = {
    "workers.tasks.send_outbox_mail", "workers.tasks.process_subscribe_requests",
    "workers.tasks.send_owed_mails", "workers.tasks.send_editor_mail",
    "workers.tasks.send_digest_batch", "workers.tasks.sweep_deliveries",
    "workers.tasks.send_weekly_digest", "workers.tasks.send_daily_digest",
    "workers.tasks.start_scheduled_digests", "workers.tasks.poll_feeds",
    "workers.tasks.poll_feed", "workers.tasks.send_deliverability_alert",
    "workers.tasks.poll_bounce_mailbox", "workers.tasks.purge_bounce_reports",
    "workers.tasks.discard_stale_uploads", "workers.tasks.run_import",
    "workers.tasks.fail_stalled_imports", "workers.tasks.run_sequences",
    "workers.tasks.deliver_webhook",
    "workers.tasks.send_owed_webhooks",
    "workers.tasks.store_clicks", "workers.tasks.fold_old_clicks", "workers.tasks.run_sunset",
}


@pytest.fixture(scope="module")
def celery(tmp_path_factory):
    app = create_app({
        "TESTING": True, "SECRET_KEY": "x" * 32, "SUPPRESSION_KEY": "y" * 32,
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        # Every optional beat entry on, so the schedule holds all of them.
        "DAILY_SCHEDULE": "07:00 Europe/Paris",
        "BOUNCE_IMAP_URL": "imaps://bounces@mail.example.com/INBOX",
        "SUNSET_AFTER_ISSUES": 3, "TRACK_READERS": True})
    import workers.tasks  # noqa: F401  registers the tasks (shared_task) with this app

    celery = app.extensions["celery"]
    celery.finalize()
    return celery


def test_the_declared_names_are_the_stable_ones():
    assert set(jobs.REGISTRY) == STABLE_NAMES


def test_every_declared_job_is_a_registered_task_and_nothing_else_is(celery):
    registered = {name for name in celery.tasks if not name.startswith("celery.")}
    assert registered == set(jobs.REGISTRY)


def test_every_route_and_beat_entry_names_a_registered_task(celery):
    routes = celery.conf.task_routes
    assert set(routes) == set(jobs.REGISTRY)
    for name, route in routes.items():
        assert route["queue"] == jobs.queue_name(celery.conf.task_default_queue.split(".")[0],
                                                 jobs.REGISTRY[name].queue)
    beat = celery.conf.beat_schedule
    declared_entries = {job.beat.entry for job in jobs.REGISTRY.values() if job.beat}
    assert set(beat) == declared_entries
    for entry in beat.values():
        assert entry["task"] in celery.tasks


def test_sends_and_transactional_mail_have_their_own_queues():
    assert jobs.job(jobs.SEND_DIGEST_BATCH).queue == jobs.BULK
    for name in (jobs.SEND_OUTBOX_MAIL, jobs.PROCESS_SUBSCRIBE_REQUESTS, jobs.SEND_EDITOR_MAIL,
                 jobs.SEND_DELIVERABILITY_ALERT):
        assert jobs.job(name).queue == jobs.TRANSACTIONAL


def test_an_undeclared_name_is_refused_where_it_is_enqueued():
    with pytest.raises(KeyError, match="not declared"):
        jobs.job("workers.tasks.send_digest_batches")


def _enqueued_names():
    """(file, line, the first argument's source) of every call that enqueues a task."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ENQUEUERS:
                yield path.relative_to(PACKAGE.parent), node.lineno, node.args[0]


def test_the_app_enqueues_only_declared_names():
    seen = 0
    for path, line, argument in _enqueued_names():
        if path.name == "queue.py":  # the enqueuers themselves pass their argument on
            continue
        seen += 1
        assert (isinstance(argument, ast.Attribute) and isinstance(argument.value, ast.Name)
                and argument.value.id == "jobs" and argument.attr in vars(jobs)
                and getattr(jobs, argument.attr) in jobs.REGISTRY), \
            f"{path}:{line} enqueues {ast.unparse(argument)}, not a name from newsletter.jobs"
    assert seen >= 10  # the scan found the call sites


def test_no_task_name_is_spelled_outside_the_registry():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "jobs.py":
            continue
        assert '"workers.tasks.' not in path.read_text(encoding="utf-8"), path
