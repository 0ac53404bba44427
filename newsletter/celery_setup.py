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

from newsletter import jobs, redis_connections
from newsletter.issues.schedule import DAYS, parse_daily_schedule, parse_schedule


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
    broker_url, sentinel_options = redis_connections.celery_broker(app.config)
    prefix = app.config["TASK_QUEUE"]
    celery.conf.update(
        broker_url=broker_url,
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
                                  "max_retries": 0, **sentinel_options},
        task_queues=[Queue(jobs.queue_name(prefix, kind)) for kind in jobs.QUEUE_KINDS],
        task_default_queue=jobs.queue_name(prefix, jobs.MAINTENANCE),
        task_routes={job.name: {"queue": jobs.queue_name(prefix, job.queue)}
                     for job in jobs.REGISTRY.values()},
        # Crontab entries are read in this zone, so 08:00 stays 08:00 across DST changes.
        timezone=str(parse_schedule(app.config["DIGEST_SCHEDULE"]).timezone),
        beat_schedule=beat_schedule(app.config),
        beat_schedule_filename=str(app.instance_path) + "/celerybeat-schedule",
        worker_hijack_root_logger=False,
    )
    app.extensions["celery"] = celery
    return celery


def beat_schedule(config) -> dict:
    """The beat entries of the jobs that declare one, read with this app's settings."""
    entries = {}
    for job in jobs.REGISTRY.values():
        beat = job.beat
        if beat is None or (beat.only_if and not config[beat.only_if]):
            continue
        if (beat.weekly or beat.daily) and config["SEND_IN_READER_TIME"]:
            # The trigger stands for the occurrence whose wall time has come somewhere on
            # Earth (issues/waves.py): it looks every five minutes, a no-op once made.
            schedule = crontab(minute="*/5")
        elif beat.weekly:
            weekly = parse_schedule(config[beat.weekly])
            schedule = crontab(minute=weekly.minute, hour=weekly.hour,
                               day_of_week=(DAYS.index(weekly.day) + 1) % 7)
        elif beat.daily:
            daily = parse_daily_schedule(config[beat.daily])
            schedule = ZonedCrontab(daily.minute, daily.hour, daily.timezone.key)
        elif isinstance(beat.every, str):
            schedule = float(config[beat.every])
        else:
            schedule = beat.every
        entries[beat.entry] = {"task": job.name, "schedule": schedule}
    return entries
