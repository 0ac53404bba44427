"""One reader by hand in the workspace: add, correct, unsubscribe, resend; the
reader's history; the import report's lines."""

from __future__ import annotations

import re

from sqlalchemy import select

from newsletter.bounces import intake
from newsletter.bounces.intake import BounceKind, BounceSource
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import (
    ConsentAction,
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
)
from newsletter.readers import privacy
from tests.factories import make_editor
from tests.helpers import csrf_token_from, finished_job_page, login, upload


def logged_in(app, client) -> str:
    make_editor(app)
    login(client)
    return csrf_token_from(client, "/admin/subscribers/new")


def reader(app, email: str) -> Subscriber:
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == email))
        db.session.expunge(subscriber)
        return subscriber


def history(app, subscriber_id: int) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        return [(event.action.value, event.source.value, event.detail)
                for event in db.session.get(Subscriber, subscriber_id).consent_events]


def owed_confirmations(app, subscriber_id: int) -> int:
    with app.app_context():
        return len(db.session.scalars(select(OutboxMail).where(
            OutboxMail.subscriber_id == subscriber_id,
            OutboxMail.template == MailTemplate.CONFIRM)).all())


def test_an_editor_adds_readers_under_the_import_rules(app, client):
    token = logged_in(app, client)
    added = client.post("/admin/subscribers/new", data={
        "csrf_token": token, "email": "ada@example.com", "name": "Ada",
        "consent": "signed up on paper at the book fair"})
    assert added.status_code == 302
    ada = reader(app, "ada@example.com")
    assert ada.status == SubscriberStatus.ACTIVE and ada.name == "Ada"
    assert history(app, ada.id) == [
        ("confirmed", "editor", "added as confirmed: signed up on paper at the book fair")]

    client.post("/admin/subscribers/new", data={"csrf_token": token, "email": "bob@example.com"})
    bob = reader(app, "bob@example.com")
    assert bob.status == SubscriberStatus.PENDING and owed_confirmations(app, bob.id) == 1

    for email, message in [("ADA@example.com", "on the list already"),
                           ("not an address", "not valid"),
                           ("eve@example.com", "stays suppressed")]:
        if email.startswith("eve"):
            client.post("/admin/subscribers/new", data={"csrf_token": token, "email": email})
            with app.app_context(), unit_of_work():
                privacy.erase_subscriber(reader(app, email).id)
        refused = client.post("/admin/subscribers/new", data={
            "csrf_token": token, "email": email, "name": "Someone"})
        page = refused.get_data(as_text=True)
        assert refused.status_code == 400 and message in page, email
        assert 'value="Someone"' in page  # what was typed stays
    with app.app_context():
        assert db.session.query(Subscriber).count() == 3  # ada, bob, erased eve


def test_edit_unsubscribe_and_resend_by_hand_are_in_the_history(app, client, monkeypatch):
    token = logged_in(app, client)
    client.post("/admin/subscribers/new", data={"csrf_token": token, "email": "bob@example.com"})
    client.post("/admin/subscribers/new", data={"csrf_token": token, "email": "cy@example.com"})
    bob = reader(app, "bob@example.com")
    nonce = bob.token_nonce

    edited = client.post(f"/admin/subscribers/{bob.id}/edit", data={
        "csrf_token": token, "email": "robert@example.com", "name": "Robert",
        "note": "wrote in with a new address"})
    assert edited.status_code == 302
    robert = reader(app, "robert@example.com")
    assert robert.name == "Robert" and robert.token_nonce != nonce  # old links stop working
    clash = client.post(f"/admin/subscribers/{bob.id}/edit", data={
        "csrf_token": token, "email": "cy@example.com", "name": "Robert"})
    assert clash.status_code == 400 and "on the list already" in clash.get_data(as_text=True)
    same = client.post(f"/admin/subscribers/{bob.id}/edit", data={
        "csrf_token": token, "email": "robert@example.com", "name": "Robert"})
    assert "Nothing changed" in client.get(same.headers["Location"]).get_data(as_text=True)

    # The new address is a mailbox of its own for the limits: one mail now, then wait.
    monkeypatch.setitem(app.config, "CONFIRM_MAIL_INTERVAL", 3600)
    resent = client.post(f"/admin/subscribers/{bob.id}/resend", data={"csrf_token": token},
                         follow_redirects=True)
    assert "on its way" in resent.get_data(as_text=True)
    refused = client.post(f"/admin/subscribers/{bob.id}/resend", data={"csrf_token": token},
                          follow_redirects=True)
    assert "Not sent" in refused.get_data(as_text=True)
    assert owed_confirmations(app, bob.id) == 2

    client.post(f"/admin/subscribers/{bob.id}/unsubscribe", data={"csrf_token": token})
    assert reader(app, "robert@example.com").status == SubscriberStatus.UNSUBSCRIBED
    not_pending = client.post(f"/admin/subscribers/{bob.id}/resend",
                              data={"csrf_token": token}, follow_redirects=True)
    assert "Only a reader waiting to confirm" in not_pending.get_data(as_text=True)
    assert owed_confirmations(app, bob.id) == 2
    assert [(action, source) for action, source, _ in history(app, bob.id)] == [
        ("subscribe_requested", "editor"), ("edited", "editor"),
        ("confirmation_resent", "editor"), ("unsubscribed", "editor")]
    assert history(app, bob.id)[1][2] == (
        "address changed; name changed: wrote in with a new address")
    assert client.post("/admin/subscribers/999/resend",
                       data={"csrf_token": token}).status_code == 404


def test_every_status_change_is_in_the_history_and_a_pending_reader_shows_no_old_state(
        app, client):
    token = logged_in(app, client)
    client.post("/admin/subscribers/new", data={"csrf_token": token, "email": "ada@example.com",
                                                "consent": "paper form"})
    ada = reader(app, "ada@example.com")
    with app.app_context(), unit_of_work():
        from newsletter.models import Editor

        owner = db.session.scalar(select(Editor))
        intake.record(BounceKind.HARD, BounceSource.WEBHOOK, ada.id, reason="550 no such user")
        intake.reactivate(ada.id, owner)
        intake.record(BounceKind.COMPLAINT, BounceSource.WEBHOOK, ada.id, provider="Gmail")
    # Unsubscribed, then asks again: pending, with an old confirmation on record.
    with app.app_context():
        subscriber = db.session.get(Subscriber, ada.id)
        subscriber.status = SubscriberStatus.PENDING
        db.session.commit()
    page = client.get(f"/admin/subscribers/{ada.id}").get_data(as_text=True)
    summary = re.search(r'<p class="muted">Joined.*?</p>', page).group(0)
    assert "waiting for confirmation" in summary
    assert "confirmed" not in summary and "unsubscribed" not in summary

    client.post(f"/admin/subscribers/{ada.id}/erase", data={"csrf_token": token,
                                                            "confirm": "yes"})
    actions = [action for action, _, _ in history(app, ada.id)]
    assert actions == ["confirmed", "bounced", "reactivated", "unsubscribed", "erased"]
    page = client.get(f"/admin/subscribers/{ada.id}").get_data(as_text=True)
    assert "erased" in page and "paper form" not in page  # editors' notes go with the data
    assert f"/admin/subscribers/{ada.id}/edit" not in page
    assert ConsentAction.ERASED.value in page


def test_the_import_report_quotes_each_bad_line_and_lists_duplicates(app, client,
                                                                     celery_worker):
    logged_in(app, client)
    hostile = "<script>alert(1)</script>" + "x" * 200
    data = (f"email\nada@example.com\n{hostile}\nADA@example.com\nbob@example.com\n"
            .encode())
    body = finished_job_page(client, upload(client, data))
    invalid = re.search(r'<table id="invalid-lines">.*?</table>', body, re.DOTALL).group(0)
    assert "<td>3</td>" in invalid and "&lt;script&gt;alert(1)&lt;/script&gt;" in invalid
    assert "x" * 55 + "…" in invalid and "x" * 56 not in invalid  # cut at 80 characters
    duplicates = re.search(r'<table id="duplicate-lines">.*?</table>', body, re.DOTALL).group(0)
    assert "<td>4</td>" in duplicates and "ADA@example.com" in duplicates
    assert "twice in the file" in duplicates
    assert "Import 2 subscribers and send confirmations" in body
