"""Subscribe -> confirm -> unsubscribe through a real worker, Redis and SMTP server."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.bounces import intake
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import (
    BounceKind,
    BounceSource,
    ConsentAction,
    ConsentEvent,
    OutboxMail,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
)
from tests.helpers import csrf_token_from, link_from, subscribe_by_form, subscriber


def consent_log(app, email) -> list[tuple[str, str]]:
    with app.app_context():
        events = db.session.scalars(
            select(ConsentEvent).join(Subscriber)
            .where(Subscriber.email_normalized == email).order_by(ConsentEvent.id)
        ).all()
        return [(event.action.value, event.source.value) for event in events]


def test_subscribe_confirm_unsubscribe(app, client, celery_worker, mailbox):
    response = subscribe_by_form(client, "Ada.Lovelace@Example.com", "Ada Lovelace")
    assert response.status_code == 302
    assert client.get(response.headers["Location"]).status_code == 200

    [confirmation] = mailbox.wait_for(1)
    # No text the requester chose: not the name in To, not the name in the body.
    assert confirmation["To"] == "Ada.Lovelace@Example.com"
    assert "Ada Lovelace" not in confirmation.as_string()
    assert confirmation["From"] == "The Test Daily <news@example.com>"
    assert confirmation["Subject"] == "Confirm your subscription to The Newsletter"
    assert confirmation["List-Unsubscribe"] is None  # not on the list yet
    assert confirmation.get_body(("html",)) is not None
    assert 'style="' in confirmation.get_body(("html",)).get_content()  # CSS inlined
    assert "1 Example Street" in confirmation.get_body(("plain",)).get_content()
    assert subscriber(app, "ada.lovelace@example.com").status == SubscriberStatus.PENDING

    confirm_path = link_from(confirmation, "/confirm/").removeprefix("http://localhost")
    page = client.get(confirm_path)  # what a mail scanner does: must change nothing
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    assert subscriber(app, "ada.lovelace@example.com").status == SubscriberStatus.PENDING

    token = csrf_token_from(client, confirm_path)
    confirmed = client.post(confirm_path, data={"csrf_token": token})
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.get_data(as_text=True)
    assert subscriber(app, "ada.lovelace@example.com").status == SubscriberStatus.ACTIVE

    welcome = mailbox.wait_for(2)[1]
    assert welcome["Subject"] == "Welcome to The Newsletter"
    unsubscribe_url = link_from(welcome, "/unsubscribe/")
    assert welcome["List-Unsubscribe"].strip() == f"<{unsubscribe_url}>"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome["List-Id"] == "<newsletter.localhost>"

    unsubscribe_path = unsubscribe_url.removeprefix("http://localhost")
    assert "Unsubscribe" in client.get(unsubscribe_path).get_data(as_text=True)
    assert subscriber(app, "ada.lovelace@example.com").status == SubscriberStatus.ACTIVE

    # RFC 8058: a mail client's POST, with no cookie and no CSRF token.
    one_click = app.test_client().post(unsubscribe_path,
                                       data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert subscriber(app, "ada.lovelace@example.com").status == SubscriberStatus.UNSUBSCRIBED

    assert consent_log(app, "ada.lovelace@example.com") == [
        ("subscribe_requested", "form"), ("confirmed", "link"), ("unsubscribed", "one-click"),
    ]
    with app.app_context():
        first = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).first()
        assert first.ip_address == "127.0.0.1"
        assert first.user_agent == "pytest-browser/1.0"
    # The name is kept for the mails after confirmation.
    assert welcome["To"] == "Ada Lovelace <Ada.Lovelace@Example.com>"


def test_confirm_link_is_single_use(app, client, celery_worker, mailbox):
    subscribe_by_form(client, "grace@example.com")
    confirm_path = link_from(mailbox.wait_for(1)[0], "/confirm/").removeprefix("http://localhost")
    token = csrf_token_from(client, confirm_path)
    assert client.post(confirm_path, data={"csrf_token": token}).status_code == 200
    again = client.post(confirm_path, data={"csrf_token": token})
    assert "already subscribed" in again.get_data(as_text=True)

    # After unsubscribing, the old confirmation link must not re-subscribe anyone.
    unsubscribe_path = "/unsubscribe/" + subscriber(app, "grace@example.com").unsubscribe_key
    app.test_client().post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"})
    replay = client.post(confirm_path, data={"csrf_token": token})
    assert replay.status_code == 400
    assert "already been used" in replay.get_data(as_text=True)
    assert subscriber(app, "grace@example.com").status == SubscriberStatus.UNSUBSCRIBED


def confirmed_reader(client, mailbox, email) -> str:
    """Subscribe and confirm through the worker; the unsubscribe path from the welcome."""
    subscribe_by_form(client, email)
    confirm_path = link_from(mailbox.wait_for(1)[0], "/confirm/").removeprefix("http://localhost")
    client.post(confirm_path, data={"csrf_token": csrf_token_from(client, confirm_path)})
    return link_from(mailbox.wait_for(2)[1], "/unsubscribe/").removeprefix("http://localhost")


def add_reader(app, email, status=SubscriberStatus.ACTIVE) -> tuple[int, str]:
    with app.app_context():
        reader = Subscriber(email=email, email_normalized=email, status=status)
        db.session.add(reader)
        db.session.commit()
        return reader.id, reader.unsubscribe_key


def resubscribe_from(client, unsubscribe_path):
    return client.post(unsubscribe_path + "/resubscribe",
                       data={"csrf_token": csrf_token_from(client, unsubscribe_path)})


def waiting_work(app) -> tuple[int, int]:
    """(subscribe requests recorded, mails owed): what a resubscribe may have queued."""
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(SubscribeRequest)),
                db.session.scalar(select(func.count()).select_from(OutboxMail)
                                  .where(OutboxMail.sent_at.is_(None))))


def test_resubscribe_after_unsubscribing_by_link_is_active_at_once(app, client, celery_worker,
                                                                  mailbox):
    unsubscribe_path = confirmed_reader(client, mailbox, "linus@example.com")
    page = client.post(unsubscribe_path,
                       data={"csrf_token": csrf_token_from(client, unsubscribe_path)})
    assert "Subscribe again" in page.get_data(as_text=True)
    assert subscriber(app, "linus@example.com").status == SubscriberStatus.UNSUBSCRIBED

    # Within the per-address interval of the first confirmation mail: no mail is needed.
    again = resubscribe_from(client, unsubscribe_path)
    assert again.status_code == 200
    assert "You are subscribed again" in again.get_data(as_text=True)
    assert subscriber(app, "linus@example.com").status == SubscriberStatus.ACTIVE
    assert waiting_work(app) == (0, 0)  # no request for the worker, no mail owed
    assert consent_log(app, "linus@example.com") == [
        ("subscribe_requested", "form"), ("confirmed", "link"), ("unsubscribed", "link"),
        ("confirmed", "link")]
    with app.app_context():
        last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
        assert last.detail == "resubscribed from unsubscribe page"
        assert last.ip_address == "127.0.0.1"

    # The same link still works, and a second click changes nothing.
    repeat = resubscribe_from(client, unsubscribe_path)
    assert "already subscribed" in repeat.get_data(as_text=True)
    assert len(consent_log(app, "linus@example.com")) == 4


def test_resubscribe_after_one_click_unsubscribe_is_active_at_once(app, client):
    _, key = add_reader(app, "oc@example.com")
    app.test_client().post(f"/unsubscribe/{key}", data={"List-Unsubscribe": "One-Click"})
    again = resubscribe_from(client, f"/unsubscribe/{key}")
    assert "You are subscribed again" in again.get_data(as_text=True)
    assert subscriber(app, "oc@example.com").status == SubscriberStatus.ACTIVE


def test_resubscribe_after_a_complaint_needs_a_confirmation_mail(app, client, celery_worker,
                                                                mailbox):
    reader_id, key = add_reader(app, "complainer@example.com")
    with app.app_context(), unit_of_work():
        intake.record(BounceKind.COMPLAINT, BounceSource.WEBHOOK, reader_id, provider="test")
    assert subscriber(app, "complainer@example.com").status == SubscriberStatus.UNSUBSCRIBED

    again = resubscribe_from(client, f"/unsubscribe/{key}")
    assert again.status_code == 200
    assert "Please confirm by mail" in again.get_data(as_text=True)
    assert mailbox.wait_for(1)[0]["Subject"].startswith("Confirm your subscription")
    assert subscriber(app, "complainer@example.com").status == SubscriberStatus.PENDING


def test_resubscribe_never_revives_a_bounced_address(app, client):
    _, key = add_reader(app, "gone@example.com", status=SubscriberStatus.BOUNCED)
    again = resubscribe_from(client, f"/unsubscribe/{key}")
    assert again.status_code == 200
    assert "We cannot send to this address" in again.get_data(as_text=True)
    assert subscriber(app, "gone@example.com").status == SubscriberStatus.BOUNCED
    assert waiting_work(app) == (0, 0)


def test_unsubscribe_form_post_needs_csrf_token(app, client):
    with app.app_context():
        db.session.add(Subscriber(email="x@example.com", email_normalized="x@example.com",
                                  status=SubscriberStatus.ACTIVE))
        db.session.commit()
    path = "/unsubscribe/" + subscriber(app, "x@example.com").unsubscribe_key
    response = app.test_client().post(path, data={"confirm": "yes"})
    assert response.status_code == 400
    assert subscriber(app, "x@example.com").status == SubscriberStatus.ACTIVE
    assert consent_log(app, "x@example.com") == []


def test_consent_action_values_are_stable():
    # Stored strings are evidence: renaming them would orphan old rows.
    assert [action.value for action in ConsentAction] == [
        "subscribe_requested", "confirmed", "unsubscribed", "confirmation_resent", "edited",
        "bounced", "reactivated", "erased", "preferences_changed", "paused",
        "resumed", "address_change_requested", "address_changed", "address_change_undone"]


def test_resubscribe_of_a_pending_reader_needs_the_confirmation(app, client, celery_worker,
                                                               mailbox):
    _, key = add_reader(app, "waiting@example.com", status=SubscriberStatus.PENDING)
    again = resubscribe_from(client, f"/unsubscribe/{key}")
    assert "Please confirm by mail" in again.get_data(as_text=True)
    assert mailbox.wait_for(1)[0]["Subject"].startswith("Confirm your subscription")
    assert subscriber(app, "waiting@example.com").status == SubscriberStatus.PENDING
