"""Thin task wrappers around services: ids in, nothing out."""

from celery import shared_task

from newsletter.services import (
    digests,
    dispatch,
    editor_mail,
    feeds,
    outbox,
    subscriber_lists,
)


@shared_task(name="workers.tasks.send_outbox_mail")
def send_outbox_mail(mail_id: int) -> None:
    outbox.send(mail_id)


@shared_task(name="workers.tasks.send_owed_mails")
def send_owed_mails() -> None:
    outbox.enqueue_owed()
    editor_mail.enqueue_owed()


@shared_task(name="workers.tasks.send_editor_mail")
def send_editor_mail(mail_id: int) -> None:
    editor_mail.send(mail_id)


@shared_task(name="workers.tasks.send_digest_batch")
def send_digest_batch(digest_id: int) -> None:
    dispatch.send_batch(digest_id)


@shared_task(name="workers.tasks.sweep_deliveries")
def sweep_deliveries() -> None:
    digests.sweep()


@shared_task(name="workers.tasks.send_weekly_digest")
def send_weekly_digest() -> None:
    digests.run_weekly()


@shared_task(name="workers.tasks.start_scheduled_digests")
def start_scheduled_digests() -> None:
    digests.start_due()


@shared_task(name="workers.tasks.poll_feeds")
def poll_feeds() -> None:
    feeds.poll_all()


@shared_task(name="workers.tasks.discard_stale_uploads")
def discard_stale_uploads() -> None:
    subscriber_lists.discard_stale_uploads()


@shared_task(name="workers.tasks.run_import")
def run_import(job_id: int) -> None:
    subscriber_lists.run_import_job(job_id)
