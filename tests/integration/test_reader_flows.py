"""Subscribe -> confirm -> unsubscribe through a real worker, Redis and SMTP server."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import ConsentAction, ConsentEvent, Subscriber, SubscriberStatus
from tests.conftest import csrf_token_from, link_from


def subscribe_by_form(client, email, name=""):
    token = csrf_token_from(client, "/subscribe")
    return client.post("/subscribe", data={"email": email, "name": name, "csrf_token": token},
                       headers={"User-Agent": "pytest-browser/1.0"})


def subscriber(app, email) -> Subscriber:
    with app.app_context():
        found = db.session.scalar(select(Subscriber).where(Subscriber.email_normalized == email))
        assert found is not None
        db.session.expunge(found)
        return found


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


def test_unsubscribe_page_offers_resubscribe_with_confirmation(app, client, celery_worker,
                                                                mailbox, monkeypatch):
    subscribe_by_form(client, "linus@example.com")
    confirm_path = link_from(mailbox.wait_for(1)[0], "/confirm/").removeprefix("http://localhost")
    client.post(confirm_path, data={"csrf_token": csrf_token_from(client, confirm_path)})
    unsubscribe_path = link_from(mailbox.wait_for(2)[1], "/unsubscribe/").removeprefix(
        "http://localhost")

    page = client.post(unsubscribe_path,
                       data={"csrf_token": csrf_token_from(client, unsubscribe_path)})
    assert "Subscribe again" in page.get_data(as_text=True)
    assert subscriber(app, "linus@example.com").status == SubscriberStatus.UNSUBSCRIBED

    monkeypatch.setitem(app.config, "CONFIRM_MAIL_INTERVAL", 0)
    again = client.post(unsubscribe_path + "/resubscribe",
                        data={"csrf_token": csrf_token_from(client, unsubscribe_path)})
    assert again.status_code == 302
    # The worker decides the request (it completes asynchronously).
    assert mailbox.wait_for(3)[2]["Subject"].startswith("Confirm your subscription")
    assert subscriber(app, "linus@example.com").status == SubscriberStatus.PENDING
    actions = [action for action, _ in consent_log(app, "linus@example.com")]
    assert actions == ["subscribe_requested", "confirmed", "unsubscribed", "subscribe_requested"]


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
        "subscribe_requested", "confirmed", "unsubscribed", "preferences_changed", "paused",
        "resumed", "address_change_requested", "address_changed"]
