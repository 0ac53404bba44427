"""Subscribe API, enumeration safety, limits, bad input and error pages."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.db import unit_of_work
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.mail.tokens import make_confirm_token
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import subscriptions
from newsletter.readers.subscriptions import ConfirmOutcome, Origin
from tests.helpers import (
    csrf_token_from,
    process_subscribe_requests,
    run,
    wait_for_subscribe_requests,
    wait_until,
)


def api_subscribe(client, payload, **kwargs):
    return client.post("/api/v1/subscriptions", json=payload, **kwargs)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def age_outbox(minutes: int) -> None:
    """Pretend every owed mail was requested ``minutes`` ago (past the sweep grace)."""
    db.session.execute(update(OutboxMail).values(requested_at=utcnow() - timedelta(
        minutes=minutes)))
    db.session.commit()


def test_api_answers_the_same_for_every_state(app, client):
    with app.app_context():
        for email, status in [("active@example.com", SubscriberStatus.ACTIVE),
                              ("pending@example.com", SubscriberStatus.PENDING),
                              ("gone@example.com", SubscriberStatus.UNSUBSCRIBED)]:
            db.session.add(Subscriber(email=email, email_normalized=email, status=status))
        db.session.commit()
    answers = [
        (response.status_code, response.get_data())
        for response in (
            api_subscribe(client, {"email": email, "name": "Someone"})
            for email in ["new@example.com", "active@example.com", "pending@example.com",
                          "gone@example.com"]
        )
    ]
    assert answers[0][0] == 202
    assert answers == [answers[0]] * 4
    process_subscribe_requests(app)  # what the worker does with them
    assert count(app, Subscriber) == 4
    # The confirmed reader is not renamed nor sent a confirmation by a stranger.
    with app.app_context():
        active = db.session.scalar(select(Subscriber).filter_by(email="active@example.com"))
        assert active.name is None and active.status == SubscriberStatus.ACTIVE
        assert db.session.scalar(select(func.count()).select_from(OutboxMail).where(
            OutboxMail.subscriber_id == active.id)) == 0


def test_per_mailbox_limit_stops_subscription_bombing(app, client, monkeypatch):
    for _ in range(5):
        assert api_subscribe(client, {"email": "victim@example.com"}).status_code == 202
    process_subscribe_requests(app)
    assert count(app, OutboxMail) == 1  # the others came within CONFIRM_MAIL_INTERVAL

    monkeypatch.setitem(app.config, "CONFIRM_MAIL_INTERVAL", 0)
    for spelling in ["VICTIM@example.com", "victim+1@example.com", "Victim+2@EXAMPLE.com",
                     "victim+3@example.com", "victim@example.com"]:
        assert api_subscribe(client, {"email": spelling}).status_code == 202
        process_subscribe_requests(app)
    assert count(app, OutboxMail) == 3  # CONFIRM_MAILS_PER_DAY, whatever the spelling
    assert count(app, ConsentEvent) == 10  # every request is still on record
    # Subscriptions are stored as typed: one per distinct address.
    assert count(app, Subscriber) == 4


def test_per_domain_cap(app, client, celery_worker, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "CONFIRM_MAILS_PER_DOMAIN_PER_HOUR", 4)
    for index in range(6):
        assert api_subscribe(client, {"email": f"reader{index}@Flooded.example"}).status_code \
            == 202
    assert api_subscribe(client, {"email": "reader@elsewhere.example"}).status_code == 202
    wait_for_subscribe_requests(app)
    mails = mailbox.wait_for(5)
    time.sleep(0.3)  # nothing more may arrive (no event tells that none will: a short look)
    recipients = sorted(str(mail["To"]) for mail in mailbox.messages)
    assert len(recipients) == 5
    assert sum(r.endswith("@Flooded.example") for r in recipients) == 4
    assert "reader@elsewhere.example" in recipients  # other domains are not held back
    assert len(mails) == 5
    # Every request is still recorded, and the readers wait as pending.
    assert count(app, Subscriber, Subscriber.status == SubscriberStatus.PENDING) == 7


def test_per_ip_rate_limit(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SUBSCRIBE_RATE_LIMIT", "2 per minute")
    for index in range(2):
        assert api_subscribe(client, {"email": f"r{index}@example.com"}).status_code == 202
    limited = api_subscribe(client, {"email": "r3@example.com"})
    assert limited.status_code == 429
    assert "Too many requests" in limited.get_json()["error"]
    token = csrf_token_from(client, "/subscribe")
    page = client.post("/subscribe", data={"email": "r4@example.com", "csrf_token": token})
    assert page.status_code == 429 and "<html" in page.get_data(as_text=True)


def test_per_ip_rate_limit_counts_an_ipv6_host_by_its_slash_64(app, client, monkeypatch):
    # One host holds a whole /64: a new address per request must not buy a new budget.
    monkeypatch.setitem(app.config, "SUBSCRIBE_RATE_LIMIT", "2 per minute")
    for index in range(2):
        response = api_subscribe(client, {"email": f"v6-{index}@example.com"},
                                 environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{index + 1}"})
        assert response.status_code == 202
    same_host = api_subscribe(client, {"email": "v6-2@example.com"},
                              environ_base={"REMOTE_ADDR": "2001:db8:1:2:ffff::9"})
    assert same_host.status_code == 429
    other_network = api_subscribe(client, {"email": "v6-3@example.com"},
                                  environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"})
    assert other_network.status_code == 202


@pytest.mark.parametrize("payload, message", [
    ({"email": "not-an-address"}, "not valid"),
    ({"email": ""}, "Enter an email address"),
    ({"email": 42}, "Enter an email address"),
    ({"email": "a" * 250 + "@example.com"}, "at most 254"),
    ({"email": "a@example.com\r\nBcc: x@example.com"}, "not allowed"),
    ({"email": "a@example.com", "name": "Eve\r\nBcc: x@example.com"}, "line breaks"),
    ({"email": "a@example.com", "name": "=?utf-8?q?Eve=0D=0ABcc:_x@example.com?="},
     "line breaks"),
    ({"email": "a@example.com", "name": "x" * 201}, "at most 200"),
    ({"name": "No Address"}, '"email" is required'),
])
def test_api_rejects_bad_input_with_a_clear_400(app, client, payload, message):
    response = api_subscribe(client, payload)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert count(app, Subscriber) == 0


def test_api_rejects_malformed_bodies(client):
    assert client.post("/api/v1/subscriptions", data="{not json",
                       content_type="application/json").status_code == 400
    assert client.post("/api/v1/subscriptions", json=["a@example.com"]).status_code == 400
    wrong_type = client.post("/api/v1/subscriptions", data={"email": "a@example.com"})
    assert wrong_type.status_code == 415
    assert "application/json" in wrong_type.get_json()["error"]
    assert client.get("/api/v1/subscriptions").status_code == 405
    assert client.get("/api/v1/nothing").get_json()["status"] == 404


def test_form_errors_keep_the_input_and_never_500(app, client):
    token = csrf_token_from(client, "/subscribe")
    response = client.post("/subscribe", data={"email": "bad@", "name": "Ada",
                                               "csrf_token": token})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "not valid" in body and 'value="bad@"' in body and 'value="Ada"' in body
    missing_csrf = client.post("/subscribe", data={"email": "a@example.com"})
    assert missing_csrf.status_code == 400 and "form expired" in missing_csrf.get_data(
        as_text=True)
    assert client.get("/no/such/page").status_code == 404
    assert count(app, Subscriber) == 0


def test_honeypot_gets_the_same_answer_and_stores_nothing(app, client):
    token = csrf_token_from(client, "/subscribe")
    response = client.post("/subscribe", data={"email": "bot@example.com",
                                               "website": "http://spam", "csrf_token": token})
    assert response.status_code == 302 and "/subscribe/thanks" in response.headers["Location"]
    assert count(app, Subscriber) == 0


def test_tampered_and_expired_links_get_a_clear_page(app, client, monkeypatch):
    with app.app_context():
        subscriptions.subscribe("late@example.com", None, Origin(source="form"))
    process_subscribe_requests(app)
    with app.app_context():
        late = db.session.scalar(select(Subscriber))
        token = make_confirm_token(late.id, late.token_nonce)
    tampered = client.get("/confirm/" + token[:-3] + "abc")
    assert tampered.status_code == 400 and "not valid" in tampered.get_data(as_text=True)
    assert client.get("/unsubscribe/garbage").status_code == 400

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + app.config["CONFIRM_MAX_AGE"] + 5)
    expired = client.get("/confirm/" + token)
    assert expired.status_code == 400
    assert "expired" in expired.get_data(as_text=True)
    assert 'name="email"' in expired.get_data(as_text=True)  # a way to ask for a new link


def test_fifty_concurrent_confirms_make_one_change(app, client):
    with app.app_context():
        subscriptions.subscribe("race@example.com", None, Origin(source="form"))
    process_subscribe_requests(app)
    with app.app_context():
        racer = db.session.scalar(select(Subscriber))
        token = make_confirm_token(racer.id, racer.token_nonce)
    outcomes, errors = [], []
    start = threading.Barrier(50)

    def confirm_once():
        with app.app_context():
            start.wait()
            try:
                with unit_of_work():
                    outcomes.append(subscriptions.confirm(token, Origin(source="link")))
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=confirm_once) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert outcomes.count(ConfirmOutcome.CONFIRMED) == 1
    assert outcomes.count(ConfirmOutcome.ALREADY_ACTIVE) == 49
    assert count(app, ConsentEvent, ConsentEvent.action == ConsentAction.CONFIRMED) == 1
    assert count(app, OutboxMail, OutboxMail.template == MailTemplate.WELCOME) == 1


OFFLINE_SUBSCRIBE = """
from newsletter import create_app
client = create_app().test_client()
print(client.post("/api/v1/subscriptions", json={"email": "patient@example.com"}).status_code)
"""


def test_subscribing_while_redis_is_down_loses_no_mail(app, client, database_url, smtp_server,
                                                       celery_worker, mailbox):
    from newsletter.devstack import free_port

    # A separate web process whose Redis is down (nothing listens on that port).
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url,
           "NEWSLETTER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "NEWSLETTER_SECRET_KEY": app.config["SECRET_KEY"],
           "NEWSLETTER_SUPPRESSION_KEY": app.config["SUPPRESSION_KEY"]}
    result = run(sys.executable, "-c", OFFLINE_SUBSCRIBE, env=env, timeout=60)
    assert result.stdout.strip() == "202", result.stderr
    assert count(app, SubscribeRequest) == 1  # recorded, its task never published

    # The sweeper (run by beat every minute) re-publishes what was never enqueued.
    with app.app_context():
        assert subscriptions.enqueue_unprocessed() == 0  # still inside the grace period
        db.session.execute(update(SubscribeRequest).values(
            requested_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
        assert subscriptions.enqueue_unprocessed() == 1
    [mail] = mailbox.wait_for(1)
    assert mail["To"] == "patient@example.com"
    wait_until(lambda: not count(app, OutboxMail, OutboxMail.sent_at.is_(None)), 10,
               "every owed mail sent")


def test_smtp_rejection_is_recorded_and_retried_by_the_sweeper(app, client, celery_worker,
                                                               mailbox):
    mailbox.replies = ["451 4.3.0 try again later"]
    assert api_subscribe(client, {"email": "retry@example.com"}).status_code == 202

    def failed_mail():
        with app.app_context():
            mail = db.session.scalar(select(OutboxMail))
            return mail if mail is not None and mail.last_error else None

    mail = wait_until(failed_mail, 10, "the refused mail recorded")
    assert "451" in mail.last_error and mail.sent_at is None and mail.attempts == 1
    with app.app_context():
        age_outbox(minutes=2)
        assert outbox.enqueue_owed() == 1
    assert mailbox.wait_for(1)[0]["To"] == "retry@example.com"
