"""The preference centre: reached from the welcome mail's footer, each change a POST
that logs consent; bad input is a 400 that changes nothing; an address change waits for
a mail to the new address (real worker, Redis and SMTP server)."""

from __future__ import annotations

import re
import smtplib
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.delivery import outbox
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.models import (
    AddressChange,
    BounceEvent,
    Cadence,
    ConsentEvent,
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import privacy
from tests.helpers import (
    CSRF_PATTERN,
    bounce_mail,
    csrf_token_from,
    link_from,
    process_subscribe_requests,
    wait_for_subscribe_requests,
)

CSRF_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+/resume)"')

pytestmark = pytest.mark.usefixtures("clean_state")


def reader(app, email="ada@example.com", name="Ada") -> str:
    """An active reader with no topics; returns the path of their preference centre."""
    with app.app_context():
        subscriber = Subscriber(email=email, email_normalized=email, name=name,
                                status=SubscriberStatus.ACTIVE, confirmed_at=utcnow())
        db.session.add(subscriber)
        db.session.commit()
        return f"/unsubscribe/{subscriber.unsubscribe_key}/preferences"


def make_topics(app) -> None:
    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])


def state(app, email="ada@example.com") -> dict:
    with app.app_context():
        found = db.session.scalar(select(Subscriber).where(Subscriber.email_normalized == email))
        return {"topics": [topic.slug for topic in found.topics], "cadence": found.cadence,
                "name": found.name, "paused_until": found.paused_until, "status": found.status,
                "pending_email": found.pending_email,
                "log": [(event.action.value, event.detail) for event in found.consent_events]}


def post(client, path: str, **data):
    """A POST from the preference centre's page, with its CSRF token."""
    page = path.split("/preferences")[0] + "/preferences"
    return client.post(path, data={"csrf_token": csrf_token_from(client, page), **data})


def test_the_welcome_mail_links_to_the_centre_and_a_get_changes_nothing(app, client,
                                                                      celery_worker, mailbox):
    path = reader(app)
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        outbox.owe(subscriber.id, MailTemplate.WELCOME)
        db.session.commit()
    [welcome] = mailbox.wait_for(1)
    unsubscribe_path = path.removesuffix("/preferences")
    assert link_from(welcome, "/unsubscribe/") == "http://localhost" + unsubscribe_path
    assert "Manage your topics" in welcome.get_body(("html",)).get_content()
    assert f"Manage your topics: http://localhost{path}\r\n" in welcome.get_body(
        ("plain",)).get_content()

    make_topics(app)
    before = state(app)
    page = client.get(path)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "ada@example.com" in body and 'value="asia"' in body
    assert "Unsubscribe from everything" in body
    assert state(app) == before


def test_topics_cadence_name_pause_and_resume_are_logged(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    path = reader(app)
    make_topics(app)

    saved = post(client, path, topics=["us", "asia"], cadence="daily")
    assert saved.status_code == 302 and "notice=saved" in saved.headers["Location"]
    assert "Your choices are saved." in client.get(saved.headers["Location"]).get_data(as_text=True)
    assert state(app)["topics"] == ["asia", "us"] and state(app)["cadence"] == Cadence.DAILY

    assert post(client, path, cadence="weekly").status_code == 302  # no topic ticked: everything
    assert state(app)["topics"] == [] and state(app)["cadence"] == Cadence.WEEKLY

    assert post(client, path + "/name", name="  Ada King ").status_code == 302
    assert state(app)["name"] == "Ada King"

    assert post(client, path + "/pause", weeks="4").status_code == 302
    paused_until = state(app)["paused_until"]
    assert timedelta(days=27) < paused_until - utcnow() <= timedelta(weeks=4)
    assert "Resume now" in client.get(path).get_data(as_text=True)
    assert post(client, path + "/resume").status_code == 302
    assert state(app)["paused_until"] is None
    assert post(client, path + "/resume").status_code == 302  # again: nothing new logged

    assert [action for action, _ in state(app)["log"]] == [
        "preferences_changed", "preferences_changed", "preferences_changed", "paused", "resumed"]
    assert state(app)["log"][0][1] == "topics=asia,us; cadence=daily"


@pytest.mark.parametrize(("suffix", "data", "reason"), [
    ("", {"topics": ["asia", "nope"], "cadence": "daily"}, "Unknown topic: nope"),
    ("", {"cadence": "hourly"}, "Cadence must be"),
    ("", {"cadence": "daily"}, "There is no daily issue to choose."),  # none configured
    ("/name", {"name": "   "}, "Enter your name."),
    ("/name", {"name": "Eve\r\nBcc: x@evil.example"}, "line breaks"),
    ("/pause", {"weeks": "3"}, "A pause lasts 2, 4 or 8 weeks."),
    ("/pause", {"weeks": "-2"}, "A pause lasts 2, 4 or 8 weeks."),
    ("/address", {"email": "not an address"}, "not valid"),
    ("/address", {"email": "ada@example.com"}, "That is the address we send to already."),
])
def test_bad_input_is_a_400_with_the_reason_and_changes_nothing(app, client, suffix, data,
                                                                reason):
    path = reader(app)
    make_topics(app)
    before = state(app)
    response = post(client, path + suffix, **data)
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert state(app) == before


def test_tampered_links_and_missing_csrf_tokens_change_nothing(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    path = reader(app)
    before = state(app)
    tampered = path.replace("/unsubscribe/", "/unsubscribe/x")
    assert client.get(tampered).status_code == 400
    assert "not valid" in client.get(tampered).get_data(as_text=True)
    assert post(client, path, cadence="daily").status_code == 302  # sanity: the real link works
    bad = client.post(tampered, data={"cadence": "weekly",
                                      "csrf_token": csrf_token_from(client, path)})
    assert bad.status_code == 400
    assert app.test_client().post(path, data={"cadence": "weekly"}).status_code == 400
    assert app.test_client().post(path + "/pause", data={"weeks": "2"}).status_code == 400
    assert state(app)["cadence"] == Cadence.DAILY and state(app)["paused_until"] is None
    assert len(state(app)["log"]) == len(before["log"]) + 1


def test_an_unsubscribed_reader_can_change_nothing(app, client):
    path = reader(app)
    assert post(client, path.removesuffix("/preferences")).status_code == 200  # unsubscribe all
    assert state(app)["status"] == SubscriberStatus.UNSUBSCRIBED
    assert "Subscribe again" in client.get(path).get_data(as_text=True)
    response = post(client, path, cadence="daily")
    assert response.status_code == 400 and "not subscribed" in response.get_data(as_text=True)
    assert state(app)["cadence"] == Cadence.WEEKLY


def test_an_address_change_waits_for_the_new_address(app, client, celery_worker, mailbox):
    path = reader(app)
    answer = post(client, path + "/address", email="Ada.New@Example.org")
    assert answer.status_code == 302
    neutral = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "If that address can receive our mail" in neutral

    [confirmation] = mailbox.wait_for(1)
    assert confirmation["To"] == "Ada.New@Example.org"
    assert confirmation["List-Unsubscribe"] is None
    assert "ada@example.com" not in confirmation.as_string()  # the old address is not told
    assert state(app)["pending_email"] == "Ada.New@Example.org"
    assert state(app, "ada@example.com")["status"] == SubscriberStatus.ACTIVE  # still the old one

    confirm_path = link_from(confirmation, "/change-address/").removeprefix("http://localhost")
    assert "Ada.New@Example.org" in client.get(confirm_path).get_data(as_text=True)
    assert state(app)["pending_email"] == "Ada.New@Example.org"  # GET changed nothing
    done = client.post(confirm_path, data={"csrf_token": csrf_token_from(client, confirm_path)})
    assert done.status_code == 200 and "Your address is changed" in done.get_data(as_text=True)
    switched = state(app, "ada.new@example.org")
    assert switched["pending_email"] is None
    assert [action for action, _ in switched["log"]] == ["address_change_requested",
                                                         "address_changed"]
    assert switched["log"][1][1] == "from ada@example.com"

    replay = client.post(confirm_path, data={"csrf_token": csrf_token_from(client, path)})
    assert replay.status_code == 400 and "already been used" in replay.get_data(as_text=True)


def test_an_address_somebody_has_gets_the_same_answer_and_no_mail(app, client, celery_worker,
                                                                 mailbox):
    path = reader(app)
    reader(app, "bob@example.com", "Bob")
    taken = post(client, path + "/address", email="BOB@example.com")
    fresh = post(client, path + "/address", email="carol@example.com")
    assert taken.status_code == fresh.status_code == 302
    assert taken.headers["Location"] == fresh.headers["Location"]
    [only] = mailbox.wait_for(1)
    assert only["To"] == "carol@example.com"
    wait_for_subscribe_requests(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 1
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 2
    assert state(app)["pending_email"] == "carol@example.com"


def test_a_link_to_an_earlier_new_address_dies_when_another_is_asked_for(app, client,
                                                                        celery_worker, mailbox,
                                                                        monkeypatch):
    path = reader(app)
    post(client, path + "/address", email="first@example.org")
    first = link_from(mailbox.wait_for(1)[0], "/change-address/").removeprefix("http://localhost")
    post(client, path + "/address", email="second@example.org")
    mailbox.wait_for(2)
    stale = client.post(first, data={"csrf_token": csrf_token_from(client, path)})
    assert stale.status_code == 400
    assert state(app)["pending_email"] == "second@example.org"


def test_an_expired_address_link_shows_the_bad_link_page(app, client, celery_worker, mailbox,
                                                        monkeypatch):
    path = reader(app)
    post(client, path + "/address", email="late@example.org")
    link = link_from(mailbox.wait_for(1)[0], "/change-address/").removeprefix("http://localhost")
    monkeypatch.setitem(app.config, "CONFIRM_MAX_AGE", -1)
    expired = client.post(link, data={"csrf_token": csrf_token_from(client, path)})
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)
    assert state(app)["pending_email"] == "late@example.org"


# --- the same through the API, with an editor's token


@pytest.fixture
def api(app):
    """Authorization headers for a read token and a write token."""
    with app.app_context(), unit_of_work():
        accounts.create_editor("owner@example.com", "correct horse battery staple")
        read, _ = accounts.create_api_token("owner@example.com", "read", ["subscribers:read"])
        write, _ = accounts.create_api_token("owner@example.com", "write", ["subscribers:write"])
    return {scope: {"Authorization": f"Bearer {token}"}
            for scope, token in (("read", read), ("write", write))}


def reader_id(app, email="ada@example.com") -> int:
    with app.app_context():
        return db.session.scalar(select(Subscriber.id).where(
            Subscriber.email_normalized == email))


def test_topics_are_listed_publicly_in_order(app, client):
    make_topics(app)
    assert client.get("/api/v1/topics").get_json() == {"topics": [
        {"slug": "asia", "name": "Asia", "description": ""},
        {"slug": "us", "name": "United States", "description": ""}]}


def test_preferences_through_the_api(app, client, api):
    reader(app)
    make_topics(app)
    url = f"/api/v1/subscribers/{reader_id(app)}/preferences"
    assert client.get(url, headers=api["read"]).get_json() == {
        "id": reader_id(app), "status": "active", "topics": [], "cadence": "weekly",
        "name": "Ada", "paused_until": None, "timezone": None, "language": None}
    assert client.put(url, json={"cadence": "daily"}, headers=api["read"]).status_code == 403

    changed = client.put(url, json={"topics": ["us", "asia"], "cadence": "daily",
                                    "name": "Ada K", "pause_weeks": 2}, headers=api["write"])
    assert changed.status_code == 200
    body = changed.get_json()
    assert (body["topics"], body["cadence"], body["name"]) == (["asia", "us"], "daily", "Ada K")
    assert body["paused_until"] is not None
    resumed = client.put(url, json={"pause_weeks": None}, headers=api["write"]).get_json()
    assert resumed["paused_until"] is None and resumed["topics"] == ["asia", "us"]
    log = state(app)["log"]
    assert [action for action, _ in log] == ["preferences_changed", "preferences_changed"]
    assert log[0][1] == ("topics=asia,us; cadence=daily; "
                         "changed: cadence, name, pause_weeks, topics")


@pytest.mark.parametrize(("payload", "status", "reason"), [
    ({"topics": ["asia", "nope"]}, 400, "Unknown topic: nope"),
    ({"topics": "asia"}, 400, "must be a list"),
    ({"cadence": "hourly"}, 400, "Cadence must be"),
    ({"cadence": 7}, 400, "Cadence must be"),
    ({"name": ""}, 400, "non-empty string"),
    ({"name": "Eve\nBcc: x@evil.example"}, 400, "line breaks"),
    ({"pause_weeks": 3}, 400, "2, 4 or 8"),
    ({"pause_weeks": True}, 400, "2, 4 or 8"),
    ({"email": "other@example.com"}, 400, "Unknown field 'email'"),
    ({"timezone": "Mars/Olympus"}, 400, "Unknown time zone"),
    ({"language": "tlh"}, 400, "Unknown language"),
    ([], 400, "JSON object"),
])
def test_bad_preferences_through_the_api_change_nothing(app, client, api, payload, status,
                                                        reason):
    reader(app)
    make_topics(app)
    before = state(app)
    response = client.put(f"/api/v1/subscribers/{reader_id(app)}/preferences", json=payload,
                          headers=api["write"])
    assert response.status_code == status
    assert reason in response.get_json()["error"]
    assert state(app) == before


def test_preferences_of_a_missing_or_unsubscribed_reader(app, client, api):
    path = reader(app)
    assert client.get("/api/v1/subscribers/999/preferences",
                      headers=api["read"]).status_code == 404
    assert client.put("/api/v1/subscribers/999/preferences", json={},
                      headers=api["write"]).status_code == 404
    post(client, path.removesuffix("/preferences"))  # unsubscribes from the centre's button
    refused = client.put(f"/api/v1/subscribers/{reader_id(app)}/preferences",
                         json={"cadence": "daily"}, headers=api["write"])
    assert refused.status_code == 409 and "active" in refused.get_json()["error"]


def test_erasure_forgets_the_addresses_an_address_change_named(app, client, celery_worker,
                                                              mailbox):
    path = reader(app)
    post(client, path + "/address", email="elsewhere@example.org")
    mailbox.wait_for(1)
    with app.app_context():
        subscriber_id = db.session.scalar(select(Subscriber.id))
        with unit_of_work():
            assert privacy.erase_subscriber(subscriber_id)
        erased = db.session.get(Subscriber, subscriber_id)
        assert erased.pending_email is None
        held = [(event.email, event.detail) for event in erased.consent_events]
    assert "elsewhere@example.org" not in repr(held) and "ada@example.com" not in repr(held)


# --- what the old address is told, and the undo it gets


def change_address(client, mailbox, path: str, new_email: str, mails_before: int) -> None:
    """Ask for a new address from ``path`` and confirm it from the mail sent there."""
    post(client, path + "/address", email=new_email)
    confirmation = mailbox.wait_for(mails_before + 1)[-1]
    assert confirmation["To"] == new_email
    link = link_from(confirmation, "/change-address/").removeprefix("http://localhost")
    done = client.post(link, data={"csrf_token": csrf_token_from(client, link)})
    assert done.status_code == 200


def path_of(app) -> str:
    """The only reader's preference centre, as it is now."""
    with app.app_context():
        key = db.session.scalar(select(Subscriber.unsubscribe_key))
    return f"/unsubscribe/{key}/preferences"


def undo_path(notice) -> str:
    return link_from(notice, "/undo-address/").removeprefix("http://localhost")


def test_a_forwarded_mail_cannot_take_the_subscription_over_unnoticed(app, celery_worker,
                                                                     mailbox):
    """Whoever holds the footer link moves the subscription to their own address; the
    old address is told at once and moves it back with one click, which also ends the
    forwarded link."""
    path = reader(app)
    intruder = app.test_client()
    change_address(intruder, mailbox, path, "mallory@evil.example", 0)
    assert state(app, "mallory@evil.example")["status"] == SubscriberStatus.ACTIVE

    notice = mailbox.wait_for(2)[-1]
    assert notice["To"] == "ada@example.com"
    assert notice["List-Unsubscribe"] is None
    assert "mallory" not in notice.as_string()  # nothing the other side typed
    with app.app_context():
        key = db.session.scalar(select(Subscriber.unsubscribe_key))
    assert key not in notice.as_string()  # the new address's link is not handed back
    assert "7 days" in notice.get_body(("plain",)).get_content()

    owner = app.test_client()
    undo = undo_path(notice)
    page = owner.get(undo)
    assert page.status_code == 200 and "ada@example.com" in page.get_data(as_text=True)
    assert state(app, "mallory@evil.example")["status"] == SubscriberStatus.ACTIVE  # GET: nothing

    done = owner.post(undo, data={"csrf_token": csrf_token_from(owner, undo)})
    assert done.status_code == 200 and "back" in done.get_data(as_text=True)
    restored = state(app)
    assert restored["status"] == SubscriberStatus.ACTIVE and restored["pending_email"] is None
    assert [action for action, _ in restored["log"]][-3:] == [
        "address_change_requested", "address_changed", "address_change_undone"]
    assert restored["log"][-1][1] == "back from mallory@evil.example"

    # The forwarded link is dead: no second move, no unsubscribing the owner.
    assert intruder.get(path).status_code == 400
    assert intruder.post(path.removesuffix("/preferences"),
                         data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert state(app)["status"] == SubscriberStatus.ACTIVE
    # The page after the undo links to the owner's fresh preference centre.
    with app.app_context():
        fresh = db.session.scalar(select(Subscriber.unsubscribe_key))
    assert fresh != key and f"/unsubscribe/{fresh}/preferences" in done.get_data(as_text=True)

    replay = owner.post(undo, data={"csrf_token": csrf_token_from(
        owner, f"/unsubscribe/{fresh}/preferences")})
    assert replay.status_code == 400
    assert "This link has already been used" in replay.get_data(as_text=True)
    assert owner.get(undo).status_code == 400
    assert state(app)["log"] == restored["log"]


def test_an_undo_link_expires_after_7_days_and_a_made_up_one_never_works(app, client,
                                                                        celery_worker, mailbox):
    path = reader(app)
    change_address(client, mailbox, path, "ada@new.example", 0)
    undo = undo_path(mailbox.wait_for(2)[-1])
    assert client.get(undo).status_code == 200  # until then
    with time_machine.travel(utcnow() + timedelta(days=7, minutes=1), tick=True):
        assert client.get(undo).status_code == 400
        token = csrf_token_from(client, path_of(app))
        expired = client.post(undo, data={"csrf_token": token})
    assert expired.status_code == 400
    assert "This link has expired" in expired.get_data(as_text=True)
    assert state(app, "ada@new.example")["status"] == SubscriberStatus.ACTIVE  # not undone

    token = csrf_token_from(client, path_of(app))
    for forged in ("/undo-address/" + "A" * 22, "/undo-address/x.y"):
        for answer in (client.get(forged), client.post(forged, data={"csrf_token": token})):
            assert answer.status_code == 400
            assert "This link is not valid" in answer.get_data(as_text=True)
    assert state(app, "ada@new.example")["status"] == SubscriberStatus.ACTIVE


def test_undoing_a_change_also_ends_the_undo_links_of_later_ones(app, client, celery_worker,
                                                               mailbox, monkeypatch):
    """ada -> b -> c: ada's undo brings ada back, and the notice b got for b -> c (which
    b's holder keeps) can no longer move the subscription to b."""
    monkeypatch.setitem(app.config, "CONFIRM_MAIL_INTERVAL", 0)
    path = reader(app)
    change_address(client, mailbox, path, "b@other.example", 0)
    first_undo = undo_path(mailbox.wait_for(2)[-1])
    change_address(client, mailbox, path, "c@other.example", 2)
    second_notice = mailbox.wait_for(4)[-1]
    assert second_notice["To"] == "b@other.example"
    second_undo = undo_path(second_notice)

    owner = app.test_client()
    assert owner.post(first_undo, data={
        "csrf_token": csrf_token_from(owner, first_undo)}).status_code == 200
    assert state(app)["status"] == SubscriberStatus.ACTIVE
    assert owner.get(second_undo).status_code == 400
    late = owner.post(second_undo, data={"csrf_token": csrf_token_from(owner, path_of(app))})
    assert late.status_code == 400
    assert "This link has already been used" in late.get_data(as_text=True)
    assert state(app)["status"] == SubscriberStatus.ACTIVE  # still ada


def test_erasure_forgets_past_addresses_and_their_undo_links(app, client, celery_worker,
                                                            mailbox):
    path = reader(app)
    change_address(client, mailbox, path, "ada@new.example", 0)
    undo = undo_path(mailbox.wait_for(2)[-1])
    with app.app_context():
        subscriber_id = db.session.scalar(select(Subscriber.id))
        with unit_of_work():
            assert privacy.erase_subscriber(subscriber_id)
        assert db.session.scalar(select(func.count()).select_from(AddressChange)) == 0
    assert client.get(undo).status_code == 400


def test_a_bounce_of_the_old_address_notice_leaves_the_reader_alone(app, client, celery_worker,
                                                                  mailbox, receiver):
    path = reader(app)
    change_address(client, mailbox, path, "ada@new.example", 0)
    notice = mailbox.wait_for(2)[-1]
    envelope_from, recipients = mailbox.envelopes[-1]
    assert recipients == ["ada@example.com"] and envelope_from.startswith("bounces+o")
    with smtplib.SMTP("127.0.0.1", receiver, timeout=30) as smtp:
        smtp.sendmail("", [envelope_from], bounce_mail(
            "postfix_hard", verp=envelope_from, recipient="ada@example.com"))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 1
    assert state(app, "ada@new.example")["status"] == SubscriberStatus.ACTIVE
    assert notice["To"] == "ada@example.com"


# --- budgets: the address form is a way to mail a stranger, like the subscribe form


def test_the_address_form_spends_the_subscribe_budget_per_client(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SUBSCRIBE_RATE_LIMIT", "2 per minute")
    path = reader(app)
    assert post(client, path + "/address", email="one@example.org").status_code == 302
    assert post(client, path + "/address", email="two@example.org").status_code == 302
    refused = post(client, path + "/address", email="three@example.org")
    assert refused.status_code == 429
    assert "Too many requests" in refused.get_data(as_text=True)
    with app.app_context():
        asked = db.session.scalars(select(SubscribeRequest.email)).all()
    assert sorted(asked) == ["one@example.org", "two@example.org"]
    # The same budget as subscribing: that client cannot subscribe anyone now either.
    assert client.post("/subscribe", data={"email": "x@example.org"}).status_code == 429


def test_address_changes_are_decided_by_the_worker_within_the_mailbox_limits(app, client,
                                                                            monkeypatch):
    """The web request only records; the same per-mailbox limit as confirmation mails
    (3 a day) holds for links to a new address, whatever the spelling."""
    monkeypatch.setitem(app.config, "CONFIRM_MAIL_INTERVAL", 0)
    path = reader(app)
    for spelling in ("Vic.Tim@gmail.com", "victim+1@gmail.com", "VICTIM@googlemail.com",
                     "v.i.c.t.i.m@gmail.com"):
        assert post(client, path + "/address", email=spelling).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 0
        assert state(app)["log"] == []  # nothing decided in the web request
    process_subscribe_requests(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 3
    assert [action for action, _ in state(app)["log"]] == ["address_change_requested"] * 4


# --- what a reader is told


def test_subscribing_again_while_paused_says_so_and_offers_to_resume(app, client):
    path = reader(app)
    assert post(client, path + "/pause", weeks="4").status_code == 302
    unsubscribe = path.removesuffix("/preferences")
    assert post(client, unsubscribe).status_code == 200
    again = client.post(unsubscribe + "/resubscribe",
                        data={"csrf_token": csrf_token_from(client, unsubscribe)})
    body = again.get_data(as_text=True)
    assert again.status_code == 200 and "You are subscribed again" in body
    assert "Our next digest will reach you" not in body
    assert "Your mail is paused until" in body and "Resume now" in body
    assert state(app)["status"] == SubscriberStatus.ACTIVE

    resume = CSRF_FORM_ACTION.search(body)
    assert resume and resume.group(1) == path + "/resume"
    token = CSRF_PATTERN.search(body).group(1)
    assert client.post(resume.group(1), data={"csrf_token": token}).status_code == 302
    assert state(app)["paused_until"] is None

    # Not paused: the promise stands.
    assert post(client, unsubscribe).status_code == 200
    plain = client.post(unsubscribe + "/resubscribe",
                        data={"csrf_token": csrf_token_from(client, unsubscribe)})
    assert "Our next digest will reach you" in plain.get_data(as_text=True)
    assert "paused" not in plain.get_data(as_text=True)


def test_only_cadences_that_exist_are_offered(app, client, monkeypatch):
    path = reader(app)
    page = client.get(path).get_data(as_text=True)
    assert 'value="daily"' not in page and "comes out weekly" in page
    refused = post(client, path, cadence="daily")
    assert refused.status_code == 400 and "There is no daily issue" in refused.get_data(
        as_text=True)
    assert post(client, path).status_code == 302  # the form as shown: no cadence field
    assert state(app)["cadence"] == Cadence.WEEKLY

    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    assert 'value="daily"' in client.get(path).get_data(as_text=True)
    assert post(client, path, cadence="daily").status_code == 302
    assert state(app)["cadence"] == Cadence.DAILY
