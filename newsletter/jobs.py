"""Every background job, declared once: its task name, its queue and its beat entry.

The app never imports ``workers``: it enqueues a job by the name declared here
(``newsletter.queue``), and ``workers/tasks.py`` registers a task under each name.
Names sit in Redis queues and in the beat schedule, so they never change.
"""

from __future__ import annotations

from dataclasses import dataclass

# Three queues, so a reader's confirmation never waits behind a bulk send.
# Webhook deliveries have a queue of their own: a slow endpoint holds up nothing else.
TRANSACTIONAL, BULK, MAINTENANCE = "transactional", "bulk", "maintenance"
WEBHOOKS = "webhooks"
QUEUE_KINDS = (TRANSACTIONAL, BULK, MAINTENANCE, WEBHOOKS)

SEND_OUTBOX_MAIL = "workers.tasks.send_outbox_mail"
PROCESS_SUBSCRIBE_REQUESTS = "workers.tasks.process_subscribe_requests"
SEND_EDITOR_MAIL = "workers.tasks.send_editor_mail"
SEND_DELIVERABILITY_ALERT = "workers.tasks.send_deliverability_alert"
SEND_DIGEST_BATCH = "workers.tasks.send_digest_batch"
SEND_OWED_MAILS = "workers.tasks.send_owed_mails"
SWEEP_DELIVERIES = "workers.tasks.sweep_deliveries"
SEND_WEEKLY_DIGEST = "workers.tasks.send_weekly_digest"
SEND_DAILY_DIGEST = "workers.tasks.send_daily_digest"
START_SCHEDULED_DIGESTS = "workers.tasks.start_scheduled_digests"
POLL_FEEDS = "workers.tasks.poll_feeds"
POLL_FEED = "workers.tasks.poll_feed"
POLL_BOUNCE_MAILBOX = "workers.tasks.poll_bounce_mailbox"
PURGE_BOUNCE_REPORTS = "workers.tasks.purge_bounce_reports"
DISCARD_STALE_UPLOADS = "workers.tasks.discard_stale_uploads"
RUN_IMPORT = "workers.tasks.run_import"
FAIL_STALLED_IMPORTS = "workers.tasks.fail_stalled_imports"
RUN_SEQUENCES = "workers.tasks.run_sequences"
DELIVER_WEBHOOK = "workers.tasks.deliver_webhook"
SEND_OWED_WEBHOOKS = "workers.tasks.send_owed_webhooks"
STORE_CLICKS = "workers.tasks.store_clicks"
FOLD_OLD_CLICKS = "workers.tasks.fold_old_clicks"
RUN_SUNSET = "workers.tasks.run_sunset"


@dataclass(frozen=True)
class Beat:
    """A periodic run. ``every``: seconds, or the setting that holds them;
    ``weekly``/``daily``: the setting that holds that schedule; ``only_if``: the
    setting that must be set for the entry to exist."""

    entry: str
    every: float | str | None = None
    weekly: str | None = None
    daily: str | None = None
    only_if: str | None = None


@dataclass(frozen=True)
class Job:
    name: str
    queue: str = MAINTENANCE
    beat: Beat | None = None


REGISTRY: dict[str, Job] = {job.name: job for job in (
    Job(SEND_OUTBOX_MAIL, TRANSACTIONAL),
    Job(PROCESS_SUBSCRIBE_REQUESTS, TRANSACTIONAL),
    Job(SEND_EDITOR_MAIL, TRANSACTIONAL),
    Job(SEND_DELIVERABILITY_ALERT, TRANSACTIONAL),
    Job(SEND_DIGEST_BATCH, BULK),
    Job(SEND_OWED_MAILS, beat=Beat("send-owed-mails", every=60.0)),
    # Every 15 s: a dead worker's claim (heartbeat TTL 10 s) is back within ~25 s.
    Job(SWEEP_DELIVERIES, beat=Beat("sweep-deliveries", every=15.0)),
    Job(DISCARD_STALE_UPLOADS, beat=Beat("discard-stale-uploads", every=600.0)),
    Job(START_SCHEDULED_DIGESTS, beat=Beat("start-scheduled-digests", every=60.0)),
    Job(SEND_WEEKLY_DIGEST, beat=Beat("weekly-digest", weekly="DIGEST_SCHEDULE")),
    Job(SEND_DAILY_DIGEST, beat=Beat("daily-digest", daily="DAILY_SCHEDULE",
                                     only_if="DAILY_SCHEDULE")),
    Job(POLL_FEEDS, beat=Beat("poll-feeds", every="FEED_POLL_INTERVAL")),
    Job(POLL_FEED),
    # Raw bounce reports are kept BOUNCE_RAW_RETENTION_DAYS.
    Job(PURGE_BOUNCE_REPORTS, beat=Beat("purge-bounce-reports", every=6 * 3600.0)),
    Job(POLL_BOUNCE_MAILBOX, beat=Beat("poll-bounce-mailbox", every="BOUNCE_IMAP_INTERVAL",
                                       only_if="BOUNCE_IMAP_URL")),
    Job(RUN_IMPORT),
    # An import whose worker died would show "running" for ever.
    Job(FAIL_STALLED_IMPORTS, beat=Beat("fail-stalled-imports", every=60.0)),
    # Enrols readers who entered and writes the ledger rows of the steps now due.
    Job(RUN_SEQUENCES, beat=Beat("run-sequences", every="SEQUENCE_INTERVAL")),
    Job(DELIVER_WEBHOOK, WEBHOOKS),
    Job(SEND_OWED_WEBHOOKS, beat=Beat("send-owed-webhooks", every=30.0)),
    # Clicks wait in Redis until this moves them into the database, in batches.
    Job(STORE_CLICKS, beat=Beat("store-clicks", every=5.0)),
    # Raw clicks older than CLICK_RETENTION_DAYS become daily counts.
    Job(FOLD_OLD_CLICKS, beat=Beat("fold-old-clicks", every=6 * 3600.0)),
    # Re-engagement mails and pauses for readers who stopped clicking; counted in issues.
    Job(RUN_SUNSET, beat=Beat("sunset", every=24 * 3600.0, only_if="SUNSET_AFTER_ISSUES")),
)}


def queue_name(prefix: str, kind: str) -> str:
    """Queue names are TASK_QUEUE + "." + kind; a worker started without -Q reads all."""
    return f"{prefix}.{kind}"


def job(name: str) -> Job:
    """The declared job; KeyError names a task that nobody declared."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"{name} is not declared in newsletter/jobs.py") from None
