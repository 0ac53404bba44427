"""A bad unsubscribe link offers "send me an unsubscribe link": no enumeration, limited."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.extensions import db, limiter
from newsletter.models import (
    ConsentEvent,
    MailTemplate,
    OutboxMail,
    RequestKind,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
)
from newsletter.readers import privacy
from tests.helpers import csrf_token_from, link_from, process_subscribe_requests


def add_reader(app, email, status=SubscriberStatus.ACTIVE) -> int:
    with app.app_context():
        reader = Subscriber(email=email, email_normalized=email, status=status)
        db.session.add(reader)
        db.session.commit()
        return reader.id


def ask_for_link(client, email, **form):
    token = csrf_token_from(client, "/unsubscribe-link")
    return client.post("/unsubscribe-link", data={"email": email, "csrf_token": token, **form})


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_bad_unsubscribe_link_offers_a_fresh_one_by_mail(app, client):
    for path in ["/unsubscribe/not-a-key", "/unsubscribe/AAAAAAAAAAAAAAAAAAAAAA"]:
        page = client.get(path)
        assert page.status_code == 400
        body = page.get_data(as_text=True)
        assert "Send me an unsubscribe link" in body and 'action="/unsubscribe-link"' in body
        assert ">Subscribe</button>" not in body  # not the subscribe form
    # A bad confirmation link still offers the subscribe form.
    assert ">Subscribe</button>" in client.get("/confirm/not-a-token").get_data(as_text=True)


def test_same_answer_and_same_work_whatever_the_address(app, client):
    add_reader(app, "active@example.com")
    add_reader(app, "pending@example.com", SubscriberStatus.PENDING)
    add_reader(app, "left@example.com", SubscriberStatus.UNSUBSCRIBED)
    add_reader(app, "bounced@example.com", SubscriberStatus.BOUNCED)
    erased = add_reader(app, "erased@example.com")
    with app.app_context():
        privacy.erase_subscriber(erased)
        db.session.commit()
    addresses = ["new@example.com", "active@example.com", "pending@example.com",
                 "left@example.com", "bounced@example.com", "erased@example.com"]
    answers = []
    for email in addresses:
        response = ask_for_link(client, email)
        answers.append((response.status_code, response.headers["Location"], response.data))
    assert answers[0][:2] == (302, "/unsubscribe-link/sent")
    assert answers == [answers[0]] * len(addresses)
    assert count(app, SubscribeRequest,
                 SubscribeRequest.kind == RequestKind.UNSUBSCRIBE_LINK) == len(addresses)
    sent_page = client.get("/unsubscribe-link/sent").get_data(as_text=True)
    assert "If this address receives The Newsletter" in sent_page

    events_before = count(app, ConsentEvent)
    process_subscribe_requests(app)
    # Only the active reader is owed a mail; nobody is created, nothing is consent-logged.
    with app.app_context():
        owed = db.session.execute(select(Subscriber.email, OutboxMail.template).join(
            OutboxMail, OutboxMail.subscriber_id == Subscriber.id)).all()
    assert owed == [("active@example.com", MailTemplate.UNSUBSCRIBE_LINK)]
    assert count(app, Subscriber) == 5 and count(app, ConsentEvent) == events_before
    assert count(app, SubscribeRequest) == 0


def test_the_mail_carries_the_readers_unsubscribe_link(app, client, celery_worker, mailbox):
    reader_id = add_reader(app, "leaving@example.com")
    assert ask_for_link(client, "Leaving@Example.com").status_code == 302
    [mail] = mailbox.wait_for(1)
    assert mail["Subject"] == "Your unsubscribe link for The Newsletter"
    assert mail["To"] == "leaving@example.com"
    link = link_from(mail, "/unsubscribe/")
    with app.app_context():
        key = db.session.get(Subscriber, reader_id).unsubscribe_key
    assert link == f"http://localhost/unsubscribe/{key}"
    assert mail["List-Unsubscribe"].strip() == f"<{link}>"
    path = link.removeprefix("http://localhost")
    client.post(path, data={"csrf_token": csrf_token_from(client, path)})
    with app.app_context():
        assert db.session.get(Subscriber, reader_id).status == SubscriberStatus.UNSUBSCRIBED


def test_limited_per_mailbox_with_confirmations_and_per_ip(app, client, monkeypatch):
    add_reader(app, "victim@example.com")
    for spelling in ["victim@example.com", "VICTIM+x@example.com", "victim@example.com"]:
        assert ask_for_link(client, spelling).status_code == 302
    process_subscribe_requests(app)
    assert count(app, OutboxMail) == 1  # the others came within CONFIRM_MAIL_INTERVAL

    monkeypatch.setitem(app.config, "SUBSCRIBE_RATE_LIMIT", "1 per minute")
    limiter.reset()
    assert ask_for_link(client, "a@example.com").status_code == 302
    limited = ask_for_link(client, "b@example.com")
    assert limited.status_code == 429 and "Too many requests" in limited.get_data(as_text=True)


def test_bad_input_is_a_form_error_and_bots_store_nothing(app, client):
    for bad in ["", "not an address", "a@b@c", "x" * 300 + "@example.com"]:
        response = ask_for_link(client, bad)
        assert response.status_code == 400, bad
        assert 'class="error"' in response.get_data(as_text=True)
    assert ask_for_link(client, "bot@example.com", website="http://spam").status_code == 302
    no_token = client.post("/unsubscribe-link", data={"email": "x@example.com"})
    assert no_token.status_code == 400
    assert count(app, SubscribeRequest) == 0
