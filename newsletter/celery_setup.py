"""Celery bound to the Flask app, as in Flask's own Celery example.

Each task runs inside its own app context (never one context for the worker's
whole life), so each task gets a fresh database session.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask
from kombu import Queue

from newsletter.issues.schedule import DAYS, parse_daily_schedule, parse_schedule
from newsletter.queue import QUEUE_KINDS, TASK_QUEUE_KIND, queue_name


class ZonedCrontab(crontab):
    """A crontab read in its own timezone: the beat's is the weekly schedule's, and the
    daily one may name another (07:00 stays 07:00 there across DST changes)."""

    def __init__(self, minute: int, hour: int, zone: str):
        super().__init__(minute=minute, hour=hour)
        self.zone = zone
        self.tz = ZoneInfo(zone)

    def __reduce__(self):  # the beat keeps its schedule pickled
        return (self.__class__, (self._orig_minute, self._orig_hour, self.zone))


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    redis_url = app.config["REDIS_URL"]
    prefix = app.config["TASK_QUEUE"]
    weekly = parse_schedule(app.config["DIGEST_SCHEDULE"])
    celery.conf.update(
        broker_url=redis_url,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A task is acknowledged after it ran: a killed worker's task runs again,
        # and the database rows make that second run harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Publishing must fail fast when Redis is down; the sweeper re-publishes.
        broker_connection_timeout=2,
        task_publish_retry=False,
        broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 5,
                                  "max_retries": 0},
        task_queues=[Queue(queue_name(prefix, kind)) for kind in QUEUE_KINDS],
        task_default_queue=queue_name(prefix, "maintenance"),
        task_routes={name: {"queue": queue_name(prefix, kind)}
                     for name, kind in TASK_QUEUE_KIND.items()},
        # Crontab entries are read in this zone, so 08:00 stays 08:00 across DST changes.
        timezone=str(weekly.timezone),
        beat_schedule={
            "send-owed-mails": {"task": "workers.tasks.send_owed_mails", "schedule": 60.0},
            "sweep-deliveries": {"task": "workers.tasks.sweep_deliveries", "schedule": 30.0},
            "discard-stale-uploads": {"task": "workers.tasks.discard_stale_uploads",
                                      "schedule": 600.0},
            "start-scheduled-digests": {"task": "workers.tasks.start_scheduled_digests",
                                        "schedule": 60.0},
            "weekly-digest": {
                "task": "workers.tasks.send_weekly_digest",
                "schedule": crontab(minute=weekly.minute, hour=weekly.hour,
                                    day_of_week=(DAYS.index(weekly.day) + 1) % 7),
            },
            "poll-feeds": {"task": "workers.tasks.poll_feeds",
                           "schedule": float(app.config["FEED_POLL_INTERVAL"])},
        },
        beat_schedule_filename=str(app.instance_path) + "/celerybeat-schedule",
        worker_hijack_root_logger=False,
    )
    # Issue 10: raw bounce reports are kept BOUNCE_RAW_RETENTION_DAYS; a bounce mailbox.
    celery.conf.beat_schedule["purge-bounce-reports"] = {
        "task": "workers.tasks.purge_bounce_reports", "schedule": 6 * 3600.0}
    if app.config["BOUNCE_IMAP_URL"]:
        celery.conf.beat_schedule["poll-bounce-mailbox"] = {
            "task": "workers.tasks.poll_bounce_mailbox",
            "schedule": float(app.config["BOUNCE_IMAP_INTERVAL"])}
    if app.config["DAILY_SCHEDULE"]:
        daily = parse_daily_schedule(app.config["DAILY_SCHEDULE"])
        celery.conf.beat_schedule["daily-digest"] = {
            "task": "workers.tasks.send_daily_digest",
            "schedule": ZonedCrontab(daily.minute, daily.hour, daily.timezone.key),
        }
    app.extensions["celery"] = celery
    return celery
