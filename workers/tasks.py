"""Thin task wrappers around services: ids in, nothing out."""

from celery import shared_task

from newsletter.services import outbox


@shared_task(name="workers.tasks.send_outbox_mail")
def send_outbox_mail(mail_id: int) -> None:
    outbox.send(mail_id)


@shared_task(name="workers.tasks.send_owed_mails")
def send_owed_mails() -> None:
    outbox.enqueue_owed()
