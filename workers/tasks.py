"""Thin task wrappers around the domain packages: ids in, nothing out."""

from celery import shared_task
from sqlalchemy.exc import InterfaceError, OperationalError

from newsletter import jobs
from newsletter.analytics import clicks, retention
from newsletter.bounces import imap, intake
from newsletter.config import FEED_DEADLINE_MAX, WEBHOOK_DEADLINE_MAX
from newsletter.content import feeds
from newsletter.db import commit_each, unit_of_work
from newsletter.delivery import dispatch, guard, outbox
from newsletter.editors import editor_mail
from newsletter.issues import digests
from newsletter.queue import send_task_now
from newsletter.readers import subscriber_lists, subscriptions, sunset
from newsletter.sequences import runner as sequence_runner
from newsletter.webhooks import deliveries


@shared_task(name=jobs.SEND_OUTBOX_MAIL)
def send_outbox_mail(mail_id: int) -> None:
    with unit_of_work():
        outbox.send(mail_id)


@shared_task(name=jobs.PROCESS_SUBSCRIBE_REQUESTS)
def process_subscribe_requests() -> None:
    decide_subscribe_requests()


def decide_subscribe_requests(gather_seconds: float = subscriptions.GATHER_SECONDS) -> int:
    """Each recorded subscribe request decided in a transaction of its own (the
    mailbox's lock is held until it commits); returns how many this copy decided."""
    decided = 0
    for request_id in subscriptions.pending_request_ids(gather_seconds):
        with unit_of_work():
            decision = subscriptions.decide_request(request_id)
        if decision.mail_id is not None:
            # Sent right away by this task, so mails are spaced as the limit decided.
            with unit_of_work():
                outbox.send(decision.mail_id)
        decided += decision.decided
    return decided


@shared_task(name=jobs.SEND_OWED_MAILS)
def send_owed_mails() -> None:
    with unit_of_work():
        subscriptions.forget_old_limits()
    subscriptions.enqueue_unprocessed()  # publishes with no lock held
    outbox.enqueue_owed()
    editor_mail.enqueue_owed()


@shared_task(name=jobs.SEND_EDITOR_MAIL)
def send_editor_mail(mail_id: int) -> None:
    with unit_of_work():
        editor_mail.send(mail_id)


# A database outage (a restart, a failover) fails the batch: its claim's heartbeat
# ends with it, so the next sweep takes its rows back, and the chain retries.
@shared_task(name=jobs.SEND_DIGEST_BATCH, autoretry_for=(OperationalError, InterfaceError),
             retry_backoff=2, retry_backoff_max=30, max_retries=20)
def send_digest_batch(digest_id: int) -> None:
    with unit_of_work():
        dispatch.send_batch(digest_id)


@shared_task(name=jobs.SWEEP_DELIVERIES)
def sweep_deliveries() -> None:
    for digest_id, status in digests.sweep_candidates():
        with unit_of_work():  # one issue's recovery does not wait for, or undo, another's
            digests.sweep_issue(digest_id, status)


@shared_task(name=jobs.SEND_WEEKLY_DIGEST)
def send_weekly_digest() -> None:
    with unit_of_work():
        digests.run_weekly()


@shared_task(name=jobs.SEND_DAILY_DIGEST)
def send_daily_digest() -> None:
    with unit_of_work():
        digests.run_daily()


@shared_task(name=jobs.START_SCHEDULED_DIGESTS)
def start_scheduled_digests() -> None:
    for digest_id in digests.due_scheduled():
        with unit_of_work():
            digests.start_send(digest_id)


@shared_task(name=jobs.POLL_FEEDS)
def poll_feeds() -> None:
    feeds.enqueue_polls()


# The fetch ends itself at FEED_FETCH_DEADLINE (at most FEED_DEADLINE_MAX); the
# limits are the backstop for whatever else hangs (a database lock, a huge feed's
# entries), so a feed can never hold a maintenance worker for long.
@shared_task(name=jobs.POLL_FEED, soft_time_limit=FEED_DEADLINE_MAX + 60,
             time_limit=FEED_DEADLINE_MAX + 90)
def poll_feed(url: str) -> None:
    poll = feeds.start_poll(url)
    for entry in poll.entries:  # one transaction per article
        with unit_of_work():
            poll.add(entry)
    with unit_of_work():
        poll.finish()


@shared_task(name=jobs.SEND_DELIVERABILITY_ALERT)
def send_deliverability_alert(digest_id: int) -> None:
    guard.send_alert(digest_id)


@shared_task(name=jobs.POLL_BOUNCE_MAILBOX)
def poll_bounce_mailbox() -> None:
    imap.poll()


@shared_task(name=jobs.PURGE_BOUNCE_REPORTS)
def purge_bounce_reports() -> None:
    with unit_of_work():
        intake.purge_raw_reports()


@shared_task(name=jobs.DISCARD_STALE_UPLOADS)
def discard_stale_uploads() -> None:
    subscriber_lists.discard_stale_uploads()


@shared_task(name=jobs.RUN_IMPORT)
def run_import(job_id: int) -> None:
    # Committed after the claim and after each chunk, so progress shows.
    commit_each(subscriber_lists.import_job_steps(job_id))


@shared_task(name=jobs.FAIL_STALLED_IMPORTS)
def fail_stalled_imports() -> None:
    with unit_of_work():
        subscriber_lists.fail_stalled_import_jobs()


@shared_task(name=jobs.RUN_SEQUENCES)
def run_sequences() -> None:
    for sequence_id in sequence_runner.sequence_ids():
        with unit_of_work():  # one sequence's run does not wait for, or undo, another's
            sequence_runner.run(sequence_id)


# The attempt ends itself at WEBHOOK_DEADLINE (at most WEBHOOK_DEADLINE_MAX); the
# limits are the backstop. The claim commits before the POST, the answer after it.
@shared_task(name=jobs.DELIVER_WEBHOOK, soft_time_limit=WEBHOOK_DEADLINE_MAX + 30,
             time_limit=WEBHOOK_DEADLINE_MAX + 60)
def deliver_webhook(delivery_id: int) -> None:
    with unit_of_work():
        attempt = deliveries.claim(delivery_id)
    if attempt is None:
        return
    answer = deliveries.post(attempt)
    with unit_of_work():
        retry_in = deliveries.finish(attempt, answer)
    if retry_in is not None:  # after the commit; the sweeper backs it up
        send_task_now(jobs.DELIVER_WEBHOOK, delivery_id, countdown=retry_in)


@shared_task(name=jobs.SEND_OWED_WEBHOOKS)
def send_owed_webhooks() -> None:
    deliveries.enqueue_owed()


@shared_task(name=jobs.STORE_CLICKS)
def store_clicks() -> int:
    """Drain the queued clicks into the database, a committed batch at a time."""
    stored = 0
    lock = clicks.drain_lock()
    if not lock.acquire():
        return 0  # another drain is running
    try:
        while clicks.still_draining(lock):
            with unit_of_work():
                drained = clicks.store_batch()
            drained.acknowledge()  # only once the rows are committed
            stored += drained.stored
            if drained.taken < clicks.DRAIN_BATCH:
                break
        return stored
    finally:
        clicks.end_drain(lock)


@shared_task(name=jobs.FOLD_OLD_CLICKS)
def fold_old_clicks() -> None:
    while True:
        with unit_of_work():
            folded = retention.fold_old_clicks()
        if folded < retention.FOLD_BATCH:
            return


@shared_task(name=jobs.RUN_SUNSET)
def run_sunset() -> None:
    """Clicked readers back first, then pauses whose grace ended, then new idle
    readers, a committed chunk at a time. Conditional updates make a second copy
    running at once change nothing twice."""
    if not sunset.enabled():
        return
    with unit_of_work():
        sunset.revive_clicked()
    with unit_of_work():
        sunset.pause_expired()
    commit_each(sunset.reengage_idle())
