"""International addresses and refusals through a real digest send: worker, Redis, SMTP.

The next reader in the batch is never affected by an address the relay cannot take.
"""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from newsletter.delivery import outbox
from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.mail.addresses import check_email
from newsletter.mail.transport import NO_SMTPUTF8, SMTPTransport
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
)
from newsletter.readers import subscriptions
from newsletter.readers.subscriptions import Origin
from tests.factories import add_article, send_now
from tests.helpers import ScriptedHandler, wait_until, wait_until_sent

# In this order, so the reader after the non-ASCII one shares its batch and connection.
READERS = ["first@example.com", "José@Bücher.example", "reader@bücher.example",
           "last@example.com"]


def add_readers(app, addresses: list[str]) -> None:
    with app.app_context():
        rows = []
        for address in addresses:
            checked = check_email(address)
            rows.append({"email": checked.given, "email_normalized": checked.normalized,
                         "status": SubscriberStatus.ACTIVE})
        db.session.execute(insert(Subscriber), rows)
        db.session.commit()


def ledger(app, digest_id: int) -> dict[str, tuple[DeliveryStatus, str | None, SubscriberStatus]]:
    with app.app_context():
        return {email: (status, error, reader_status) for email, status, error, reader_status in
                db.session.execute(
                    select(Subscriber.email, Delivery.status, Delivery.last_error,
                           Subscriber.status)
                    .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                    .where(Delivery.digest_id == digest_id))}


def wait_for(condition, timeout: float = 20):
    wait_until(condition, timeout)


@pytest.fixture
def relay(app, monkeypatch, request):
    """A second real SMTP server the worker's transport is pointed at for one test."""
    handler = ScriptedHandler(getattr(request, "param", {}).get("replies"))
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=getattr(request, "param", {}).get("utf8", False))
    controller.start()
    transport = SMTPTransport({**app.config, "SMTP_PORT": controller.port})
    monkeypatch.setitem(app.extensions, "smtp", transport)
    monkeypatch.setitem(app.extensions, "smtp_relays", {transport.name: transport})
    yield handler
    app.extensions["smtp"].close()
    controller.stop()


def test_without_smtputf8_the_non_ascii_reader_fails_and_the_batch_goes_on(
        app, client, celery_worker, relay):
    add_readers(app, READERS)
    add_article(app)
    digest_id = send_now(app)
    counts = wait_until_sent(app, digest_id)
    assert (counts["sent"], counts["failed"], counts["unknown"]) == (3, 1, 0)
    rows = ledger(app, digest_id)
    assert rows["José@Bücher.example"] == (DeliveryStatus.FAILED, NO_SMTPUTF8,
                                           SubscriberStatus.ACTIVE)
    assert rows["last@example.com"][0] == DeliveryStatus.SENT
    assert [rcpt for _, rcpt, _, _ in relay.received] == [
        ["first@example.com"], ["reader@xn--bcher-kva.example"], ["last@example.com"]]
    idn = relay.received[1][3]
    assert b"\r\nTo: <reader@xn--bcher-kva.example>\r\n" in idn and idn.isascii()


@pytest.mark.parametrize("relay", [{"utf8": True}], indirect=True)
def test_with_smtputf8_every_reader_gets_the_digest(app, client, celery_worker, relay):
    add_readers(app, READERS)
    add_article(app)
    counts = wait_until_sent(app, send_now(app))
    assert (counts["sent"], counts["failed"]) == (4, 0)
    by_recipient = {rcpt[0]: (options, content) for _, rcpt, options, content in relay.received}
    assert sorted(by_recipient) == ["José@xn--bcher-kva.example", "first@example.com",
                                    "last@example.com", "reader@xn--bcher-kva.example"]
    options, content = by_recipient["José@xn--bcher-kva.example"]
    assert "SMTPUTF8" in options
    assert "\r\nTo: <José@xn--bcher-kva.example>\r\n".encode() in content
    assert "SMTPUTF8" not in by_recipient["last@example.com"][0]


@pytest.mark.parametrize("relay", [{"replies": {
    "listed@example.com": "550 5.7.1 Service unavailable; client host blocked using Spamhaus",
    "gone@example.com": "550 5.1.1 The email account that you tried to reach does not exist",
}}], indirect=True)
def test_a_policy_refusal_keeps_the_reader_and_a_bad_mailbox_bounces(app, client,
                                                                     celery_worker, relay):
    add_readers(app, ["listed@example.com", "gone@example.com", "fine@example.com"])
    add_article(app)
    digest_id = send_now(app)
    counts = wait_until_sent(app, digest_id)
    assert (counts["sent"], counts["failed"]) == (1, 2)
    rows = ledger(app, digest_id)
    assert rows["listed@example.com"][0] == DeliveryStatus.FAILED
    assert rows["listed@example.com"][2] == SubscriberStatus.ACTIVE  # gets next week's issue
    assert rows["listed@example.com"][1].startswith("550 5.7.1")
    assert rows["gone@example.com"][0] == DeliveryStatus.FAILED
    assert rows["gone@example.com"][2] == SubscriberStatus.BOUNCED
    assert [rcpt for _, rcpt, _, _ in relay.received] == [["fine@example.com"]]


def test_confirmation_to_a_non_ascii_address_fails_cleanly_and_the_next_one_arrives(
        app, client, celery_worker, relay):
    with app.app_context():
        subscriptions.subscribe("josé@bücher.example", None, Origin(source="form"))
        subscriptions.subscribe("next@bücher.example", None, Origin(source="form"))
    wait_for(lambda: relay.received)
    assert [rcpt for _, rcpt, _, _ in relay.received] == [["next@xn--bcher-kva.example"]]

    def josés_mail():  # the two requests are decided in either order
        with app.app_context():
            return db.session.scalar(select(OutboxMail.id).join(
                Subscriber, Subscriber.id == OutboxMail.subscriber_id).where(
                Subscriber.email == "josé@bücher.example", OutboxMail.last_error.is_not(None)))

    wait_for(josés_mail)
    with app.app_context():
        failed = db.session.get(OutboxMail, josés_mail())
        assert failed.template == MailTemplate.CONFIRM and failed.sent_at is None
        assert failed.last_error == NO_SMTPUTF8
        assert failed.attempts == outbox.MAX_ATTEMPTS  # permanent: not retried by the sweeper


@pytest.mark.parametrize("relay", [{"utf8": True}], indirect=True)
def test_confirmation_to_a_non_ascii_address_arrives_over_smtputf8(app, client, celery_worker,
                                                                    relay):
    with app.app_context():
        subscriptions.subscribe("josé@bücher.example", "José", Origin(source="form"))
    wait_for(lambda: relay.received)
    _, rcpt, options, content = relay.received[0]
    assert rcpt == ["josé@xn--bcher-kva.example"] and "SMTPUTF8" in options
    assert "To: josé@xn--bcher-kva.example\r\n".encode() in content  # no name: issue 7
