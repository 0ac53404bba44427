"""The sunset policy through the real stack: issues sent by a real worker to a real SMTP
server, tracked links clicked through the app (a person and a scanner), clicks drained
into the database, the policy's job, the re-engagement mail in each reader's language,
"Keep me subscribed", and the pause after the grace."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from threading import Barrier, Thread
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import insert, select, update

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.mail.tokens import make_confirm_token, make_keep_token
from newsletter.models import (
    Click,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Digest,
    MailTemplate,
    OutboxMail,
    ReaderSunset,
    Subscriber,
    SunsetState,
    Verdict,
    utcnow,
)
from newsletter.readers import privacy, sunset
from tests.factories import (
    add_article,
    add_editor,
    add_subscribers,
    send_now,
    sent_issue,
    session_client,
)
from tests.helpers import csrf_token_from, wait_until_sent
from workers.tasks import run_sunset, send_owed_mails, store_clicks

BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
READERS = ["clicker", "idle-en", "idle-fr", "scanned", "keeper"]
ISSUES = 2


@pytest.fixture
def policy(app):
    app.config.update(TRACK_READERS=True, SUNSET_AFTER_ISSUES=ISSUES, SUNSET_GRACE_DAYS=14,
                      LANGUAGES=("en", "fr"))


def add_readers(app) -> dict[str, int]:
    ids = {}
    for name in READERS:
        [ids[name]] = add_subscribers(app, 1, prefix=name)[-1:]
    with app.app_context(), unit_of_work():
        db.session.get(Subscriber, ids["idle-fr"]).language = "fr"
    return ids


def send_issue(app, mailbox, number: int) -> dict[str, object]:
    """A new issue through the worker; each recipient's message by reader name."""
    mailbox.reset()
    add_article(app, title=f"Story {number}", url=f"https://news.example.com/story-{number}")
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    with app.app_context():
        recipients = db.session.get(Digest, digest_id).recipients
    return by_reader(mailbox.wait_for(recipients))


def by_reader(messages) -> dict:
    return {message["To"].addresses[0].username.rstrip("0123456789"): message
            for message in messages}


def tracked_link(message) -> str:
    html = message.get_body(("html",)).get_content()
    return urlsplit(re.findall(r'href="(http://localhost/r/[^"]+)"', html)[0]).path


def keep_path(message) -> str:
    text = message.get_body(("plain",)).get_content()
    return urlsplit(re.search(r"http://localhost/keep/\S+", text).group(0)).path


def state(app, subscriber_id: int) -> SunsetState:
    with app.app_context():
        return sunset.state_of(subscriber_id)


def owed_reengagements(app) -> int:
    with app.app_context():
        return db.session.scalar(select(db.func.count()).select_from(OutboxMail).where(
            OutboxMail.template == MailTemplate.REENGAGE))


def moved_readers(app) -> int:
    with app.app_context():
        return db.session.scalar(select(db.func.count()).select_from(ReaderSunset).where(
            ReaderSunset.state != SunsetState.ACTIVE))


def tracked_issues(app, emails: list[str]) -> tuple[int, list[int]]:
    """ISSUES weekly issues, sent with reader tracking, already delivered to these readers."""
    for days_ago in range(ISSUES, 0, -1):
        digest_id, ids = sent_issue(app, emails, days_ago=days_ago * 7)
        with app.app_context(), unit_of_work():
            db.session.execute(update(Digest).where(Digest.id == digest_id)
                               .values(readers_tracked=True))
    return digest_id, ids


def click(app, digest_id: int, subscriber_id: int, verdict: Verdict) -> None:
    with app.app_context(), unit_of_work():
        db.session.execute(insert(Click).values(
            record_key=secrets.token_hex(8), digest_id=digest_id, link=1, copy=7,
            verdict=verdict, reason="test", at=utcnow(), subscriber_id=subscriber_id))


def run_policy(app) -> None:
    with app.app_context():
        run_sunset()


def publish_owed_mails(app) -> None:
    """Beat's owed-mail sweep, a minute on: it publishes the re-engagement mails."""
    with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True), app.app_context():
        send_owed_mails()


def drain(app) -> None:
    with app.app_context():
        store_clicks()


def test_idle_readers_are_asked_then_paused_and_a_person_click_or_keep_saves_them(
        app, client, celery_worker, mailbox, policy):
    ids = add_readers(app)
    first = send_issue(app, mailbox, 1)
    assert set(first) == set(READERS)
    # Minutes after sending: a person opens one story; a scanner fetches another copy.
    with time_machine.travel(utcnow() + timedelta(minutes=5), tick=True):
        person = client.get(tracked_link(first["clicker"]), headers={"User-Agent": BROWSER})
        for method in ("HEAD", "GET"):
            scanned = client.open(tracked_link(first["scanned"]), method=method,
                                  headers={"User-Agent": SCANNER})
    assert person.status_code == scanned.status_code == 302
    drain(app)
    send_issue(app, mailbox, 2)

    mailbox.reset()
    run_policy(app)
    publish_owed_mails(app)
    asked = by_reader(mailbox.wait_for(4))
    assert set(asked) == {"idle-en", "idle-fr", "scanned", "keeper"}  # a bot click saves nobody
    assert state(app, ids["clicker"]) == SunsetState.ACTIVE
    assert asked["idle-fr"]["Subject"].startswith("Voulez-vous toujours recevoir")
    assert "Rester abonné" in asked["idle-fr"].get_body(("html",)).get_content()
    assert asked["idle-en"]["Subject"].startswith("Do you still want")
    for message in asked.values():
        assert message["List-Unsubscribe"].startswith("<http://localhost/unsubscribe/")
        assert "Keep me subscribed" in message.get_body(("html",)).get_content() or (
            message is asked["idle-fr"])
    # A second run (beat firing twice) owes nobody a second mail.
    run_policy(app)
    assert owed_reengagements(app) == moved_readers(app) == 4

    # A scanner's GET of the keep link keeps nobody; a forged link is 404.
    keep = keep_path(asked["keeper"])
    page = client.get(keep, headers={"User-Agent": SCANNER})
    assert page.status_code == 200 and 'method="post"' in page.get_data(as_text=True)
    assert state(app, ids["keeper"]) == SunsetState.REENGAGING
    forged = keep[:-3] + ("aaa" if not keep.endswith("aaa") else "bbb")
    assert client.get(forged).status_code == 404
    assert client.post(forged, data={"csrf_token": csrf_token_from(client, keep)}
                       ).status_code == 404
    assert client.post(keep).status_code == 400  # no CSRF token: nothing kept
    assert state(app, ids["keeper"]) == SunsetState.REENGAGING
    kept = client.post(keep, data={"csrf_token": csrf_token_from(client, keep)})
    assert kept.status_code == 200 and "You stay subscribed" in kept.get_data(as_text=True)
    assert state(app, ids["keeper"]) == SunsetState.ACTIVE

    # The grace ends: the rest are paused and the next issue skips them.
    with time_machine.travel(utcnow() + timedelta(days=15), tick=True):
        run_policy(app)
    for name in ("idle-en", "idle-fr", "scanned"):
        assert state(app, ids[name]) == SunsetState.PAUSED
    with app.app_context():  # each reader's history says why, with their address
        events = db.session.execute(select(ConsentEvent.subscriber_id, ConsentEvent.email)
                                    .where(ConsentEvent.action == ConsentAction.PAUSED,
                                           ConsentEvent.source == ConsentSource.SUNSET)).all()
    assert sorted(events) == sorted((ids[name], f"{name}0@example.com")
                                    for name in ("idle-en", "idle-fr", "scanned"))
    third = send_issue(app, mailbox, 3)
    assert set(third) == {"clicker", "keeper"}

    # The editor sees why; the reader resumes from the preference centre.
    editor = session_client(app, add_editor(app, "owner@example.com", "owner"))
    reader_page = editor.get(f"/admin/subscribers/{ids['idle-en']}").get_data(as_text=True)
    assert "Paused by the sunset policy" in reader_page
    with app.app_context():
        key = db.session.get(Subscriber, ids["idle-en"]).unsubscribe_key
    preferences = f"/unsubscribe/{key}/preferences"
    assert 'id="sunset-paused"' in client.get(preferences).get_data(as_text=True)
    with app.app_context():  # a page welcoming them back names the open-ended pause, no date
        reader = db.session.get(Subscriber, ids["idle-en"])
        confirm_link = make_confirm_token(reader.id, reader.token_nonce)
    welcome_back = client.get(f"/confirm/{confirm_link}").get_data(as_text=True)
    assert "It stays paused until you resume it." in welcome_back
    assert "9999" not in welcome_back
    resumed = client.post(preferences + "/resume",
                          data={"csrf_token": csrf_token_from(client, preferences)})
    assert resumed.status_code == 302
    assert state(app, ids["idle-en"]) == SunsetState.ACTIVE
    with app.app_context():
        assert db.session.get(Subscriber, ids["idle-en"]).paused_until is None


def test_sunset_off_does_nothing(app, client, celery_worker, mailbox, policy):
    app.config["SUNSET_AFTER_ISSUES"] = 0
    add_readers(app)
    for number in range(1, 4):
        send_issue(app, mailbox, number)
    run_policy(app)
    assert owed_reengagements(app) == moved_readers(app) == 0


def test_issues_sent_without_reader_tracking_never_count(app, client, celery_worker, mailbox,
                                                         policy):
    app.config["TRACK_READERS"] = False
    add_readers(app)
    for number in range(1, 4):
        send_issue(app, mailbox, number)
    app.config["TRACK_READERS"] = True  # turned on now: the old issues prove nothing
    run_policy(app)
    assert owed_reengagements(app) == moved_readers(app) == 0
    send_issue(app, mailbox, 4)  # one tracked issue is not N
    run_policy(app)
    assert owed_reengagements(app) == moved_readers(app) == 0
    send_issue(app, mailbox, 5)
    mailbox.reset()
    run_policy(app)
    assert owed_reengagements(app) == moved_readers(app) == len(READERS)
    publish_owed_mails(app)
    assert len(mailbox.wait_for(len(READERS))) == len(READERS)


def test_two_runs_at_once_ask_each_idle_reader_once(app, client, policy):
    emails = [f"idle{n}@example.com" for n in range(30)]
    tracked_issues(app, emails)
    start, failures = Barrier(2), []

    def run() -> None:
        start.wait()
        try:
            run_policy(app)
        except Exception as error:  # noqa: BLE001  reported below, in the test's thread
            failures.append(error)

    threads = [Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert owed_reengagements(app) == moved_readers(app) == len(emails)


def test_a_person_clicking_after_the_mail_is_back_and_a_bot_click_is_not(app, client, policy):
    digest_id, (person, bot) = tracked_issues(app, ["person@example.com", "bot@example.com"])
    run_policy(app)
    assert state(app, person) == state(app, bot) == SunsetState.REENGAGING
    click(app, digest_id, person, Verdict.HUMAN)
    click(app, digest_id, bot, Verdict.BOT)
    with time_machine.travel(utcnow() + timedelta(days=15), tick=True):
        run_policy(app)
    assert state(app, person) == SunsetState.ACTIVE
    assert state(app, bot) == SunsetState.PAUSED
    # A person's click on an old issue after the pause lifts it (one before it does not).
    click(app, digest_id, bot, Verdict.HUMAN)
    run_policy(app)
    assert state(app, bot) == SunsetState.PAUSED
    with time_machine.travel(utcnow() + timedelta(days=16), tick=True):
        click(app, digest_id, bot, Verdict.HUMAN)
        run_policy(app)
    assert state(app, bot) == SunsetState.ACTIVE
    with app.app_context():
        assert db.session.get(Subscriber, bot).paused_until is None
    # Counted afresh from then: the issues before do not ask either of them again.
    run_policy(app)
    assert owed_reengagements(app) == 2


def test_an_erased_reader_leaves_the_policy_and_their_keep_link_shows_no_address(
        app, client, policy):
    _, [reader] = tracked_issues(app, ["gone@example.com"])
    run_policy(app)
    assert moved_readers(app) == 1
    with app.app_context():
        keep = f"/keep/{make_keep_token(reader)}"
        with unit_of_work():
            assert privacy.erase_subscriber(reader)
    assert moved_readers(app) == 0
    page = client.get(keep)
    assert page.status_code == 200
    assert "You are not subscribed" in page.get_data(as_text=True)
    assert "erased" not in page.get_data(as_text=True)
    assert 'method="post"' not in page.get_data(as_text=True)
