"""Controlling a running send: pause and cancel within one message, the shared rate
limiter, per-domain backoff, transactional mail that never waits behind a send."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
import time_machine
from sqlalchemy import insert, select

from newsletter.config import ConfigError, load_settings
from newsletter.config_checks import check_send_settings
from newsletter.db import unit_of_work
from newsletter.delivery import heartbeat
from newsletter.delivery.relay import Relay, SendRate
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from tests.factories import add_article, add_subscribers, make_editor, send_now
from tests.helpers import (
    login,
    subscribe_by_form,
    sweep,
    wait_for_idle_ledger,
    wait_until,
    wait_until_sent,
)


def wait_for(predicate, timeout: float = 30, message: str = "condition"):
    return wait_until(predicate, timeout, message)


def test_pause_and_cancel_act_within_one_message(app, client, celery_worker, mailbox,
                                                 monkeypatch):
    monkeypatch.setitem(app.config, "SEND_BATCH_SIZE", 100)  # the whole send is one batch
    mailbox.delay = 0.05
    add_subscribers(app, 60)
    add_article(app)
    digest_id = send_now(app)
    mailbox.wait_for(5)
    before_pause = len(mailbox.messages)
    with app.app_context(), unit_of_work():
        assert digests.pause(digest_id)
    paused = wait_for_idle_ledger(app, digest_id)
    # The message in flight when the pause landed may still go, and one marked by a
    # statement that began just before the pause committed; nothing after them.
    assert len(mailbox.messages) <= before_pause + 2
    assert paused["sent"] == len(mailbox.messages) and paused["pending"] > 0

    with app.app_context(), unit_of_work():
        assert digests.resume(digest_id)
    mailbox.wait_for(len(mailbox.messages) + 5)
    before_cancel = len(mailbox.messages)
    with app.app_context(), unit_of_work():
        assert digests.cancel(digest_id)
    cancelled = wait_for_idle_ledger(app, digest_id)
    assert len(mailbox.messages) <= before_cancel + 2
    assert cancelled["pending"] == cancelled["sending"] == cancelled["deferred"] == 0
    assert cancelled["sent"] + cancelled["skipped"] == 60
    received = [m["To"].addresses[0].addr_spec for m in mailbox.messages]
    assert len(received) == len(set(received)) == cancelled["sent"]


def test_shared_rate_limiter_honours_fractional_rates(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(SendRate.KEY)
    rate = SendRate(1.5, client)
    delays = [rate.delay() for _ in range(4)]  # four workers asking at once
    assert delays[0] == 0.0
    for index, delay in enumerate(delays):  # one slot every 2/3 s, not every second
        assert delay == pytest.approx(index / 1.5, abs=0.05)
    client.set(SendRate.KEY, "1.0")  # a slot far in the past: no wait, never negative
    assert rate.delay() == 0.0
    client.delete(SendRate.KEY)


def test_a_row_is_marked_in_flight_only_after_the_rate_wait(app, client, celery_worker,
                                                             mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "SEND_RATE", 0.25)  # one message every 4 s
    add_subscribers(app, 3)
    add_article(app)
    digest_id = send_now(app)

    def rows():
        with app.app_context():
            return db.session.execute(select(Delivery.status, Delivery.attempted_at)
                                      .order_by(Delivery.id)).all()

    wait_for(lambda: rows()[0].status == DeliveryStatus.SENT, message="the first row sent")
    observe_until = time.monotonic() + 1.5
    # No event marks "still waiting": the row is watched while the worker waits for its slot.
    while time.monotonic() < observe_until:  # the worker waits for its slot meanwhile
        waiting = rows()[1]
        assert waiting.status == DeliveryStatus.SENDING and waiting.attempted_at is None
        time.sleep(0.1)
    with app.app_context(), unit_of_work():
        assert digests.cancel(digest_id)
    wait_for_idle_ledger(app, digest_id)


def test_a_slow_domain_is_backed_off_and_others_go_on(app, client, smtp_pipelining,
                                                      celery_worker, mailbox):
    # The first reader's domain answers 451: its other readers are deferred without
    # being tried (no attempt spent); everyone else is sent at once.
    with app.app_context():
        rows = [{"email": f"r{n}@{'slow' if n % 2 == 0 else 'fast'}.example",
                 "email_normalized": f"r{n}@{'slow' if n % 2 == 0 else 'fast'}.example",
                 "status": SubscriberStatus.ACTIVE} for n in range(21)]
        db.session.execute(insert(Subscriber), rows)
        db.session.commit()
        redis.Redis.from_url(app.config["REDIS_URL"]).delete(
            "newsletter:domain-backoff:slow.example")
    mailbox.replies = ["451 4.7.1 Greylisted, come back later"]
    add_article(app)
    digest_id = send_now(app)
    counts = wait_for(lambda: (lambda c: c if c["sent"] == 10 and c["deferred"] == 11
                               and c["sending"] == 0 else None)(progress(app, digest_id)),
                      message="fast sent, slow deferred")
    assert counts["failed"] == 0
    received = {m["To"].addresses[0].addr_spec for m in mailbox.messages}
    assert received == {f"r{n}@fast.example" for n in range(1, 21, 2)}
    with app.app_context(), unit_of_work():
        slow = db.session.execute(
            select(Delivery.attempts, Delivery.last_error).join(Subscriber)
            .where(Subscriber.email.like("%@slow.example")).order_by(Delivery.id)).all()
        assert slow[0] == (1, "451 4.7.1 Greylisted, come back later")
        assert all(attempts == 0 and "backing off" in error for attempts, error in slow[1:])
        assert digests.cancel(digest_id)
        redis.Redis.from_url(app.config["REDIS_URL"]).delete(
            "newsletter:domain-backoff:slow.example")


def deliveries_at(app, domain: str) -> list[tuple[str, DeliveryStatus, int, str | None]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_error)
            .join(Subscriber).where(Subscriber.email.like(f"%@{domain}"))
            .order_by(Delivery.id))]


def test_a_busy_mailbox_defers_only_its_reader(app, client, smtp_pipelining, celery_worker,
                                               mailbox, monkeypatch):
    # One mailbox answers 451 4.2.0 twice: its reader waits on SEND_RETRY_DELAY
    # (doubling) while the other four readers at the same domain go out at once.
    monkeypatch.setitem(app.config, "SEND_RETRY_DELAY", 1)
    add_subscribers(app, 5)
    busy = "reader0@example.com"  # the first row: every other reader comes after it
    mailbox.recipient_replies[busy] = ["451 4.2.0 mailbox busy"] * 2
    add_article(app)
    digest_id = send_now(app)

    def first_pass():
        rows = deliveries_at(app, "example.com")
        return rows if sum(status is DeliveryStatus.SENT for _, status, _, _ in rows) == 4 \
            and rows[0][1:3] == (DeliveryStatus.DEFERRED, 1) else None

    rows = wait_until(first_pass, timeout=20, what=lambda: deliveries_at(app, "example.com"))
    assert rows[0][3] == "451 4.2.0 mailbox busy"
    assert {m["To"].addresses[0].addr_spec for m in mailbox.messages} == {
        f"reader{n}@example.com" for n in range(1, 5)}

    def busy_row(attempts, status):
        return lambda: deliveries_at(app, "example.com")[0][1:3] == (status, attempts)

    # The retries come when SEND_RETRY_DELAY says (1 s, then 2 s): the clock moves on.
    with time_machine.travel(utcnow() + timedelta(seconds=1.2), tick=True) as traveller:
        with app.app_context():
            sweep()
        wait_until(busy_row(2, DeliveryStatus.DEFERRED), timeout=20, what="the first retry")
        traveller.shift(timedelta(seconds=2.2))
        with app.app_context():
            sweep()
        wait_until_sent(app, digest_id)
    received = [m["To"].addresses[0].addr_spec for m in mailbox.messages]
    assert sorted(received) == [f"reader{n}@example.com" for n in range(5)]  # once each
    assert deliveries_at(app, "example.com")[0][1:] == (DeliveryStatus.SENT, 3, None)


@pytest.mark.parametrize("reply", ["452 4.2.2 mailbox full", "450 4.2.1 try later"])
def test_4xx_from_several_readers_of_a_domain_backs_it_off(app, client, smtp_pipelining,
                                                           celery_worker, mailbox, reply):
    # Three different readers of one domain answer 4xx: the domain itself is in
    # trouble, so its later readers are deferred untried while other domains go on.
    add_subscribers(app, 6)
    with app.app_context(), unit_of_work():
        db.session.execute(insert(Subscriber), [
            {"email": f"other{n}@example.net", "email_normalized": f"other{n}@example.net",
             "status": SubscriberStatus.ACTIVE} for n in range(2)])
    for n in range(3):
        mailbox.recipient_replies[f"reader{n}@example.com"] = [reply]
    add_article(app)
    digest_id = send_now(app)

    def settled():
        counts = progress(app, digest_id)
        return counts if counts["sending"] == counts["pending"] == 0 else None

    counts = wait_until(settled, timeout=20, what=lambda: progress(app, digest_id))
    assert (counts["sent"], counts["deferred"]) == (2, 6)
    assert {m["To"].addresses[0].addr_spec for m in mailbox.messages} == {
        "other0@example.net", "other1@example.net"}
    rows = deliveries_at(app, "example.com")
    assert [(attempts, error) for _, _, attempts, error in rows[:3]] == [(1, reply)] * 3
    assert all(attempts == 0 and "example.com is backing off" in error
               for _, _, attempts, error in rows[3:])
    with app.app_context(), unit_of_work():
        assert digests.cancel(digest_id)


def progress(app, digest_id):
    with app.app_context():
        return digests.progress(digest_id)


def test_confirmation_arrives_while_a_large_rate_capped_send_runs(app, client, celery_worker,
                                                                   mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "SEND_RATE", 50)
    add_subscribers(app, 20_000)
    add_article(app)
    digest_id = send_now(app)  # 20,000 readers at 50/s: hours of work
    mailbox.wait_for(20)
    bulk_queue = app.config["TASK_QUEUE"] + ".bulk"
    broker = redis.Redis.from_url(app.config["REDIS_URL"])
    assert broker.llen(bulk_queue) <= app.config["SEND_CONCURRENCY"]  # not 200 tasks

    assert subscribe_by_form(client, "newcomer@example.org").status_code == 302
    wait_for(lambda: any(m["To"].addresses[0].addr_spec == "newcomer@example.org"
                         for m in mailbox.messages), timeout=15,
             message="the confirmation mail")
    assert broker.llen(bulk_queue) <= app.config["SEND_CONCURRENCY"]
    counts = progress(app, digest_id)
    assert counts["remaining"] > 15_000  # the send was still running meanwhile
    with app.app_context(), unit_of_work():
        assert digests.cancel(digest_id)
    wait_for_idle_ledger(app, digest_id)


def test_report_shows_why_a_send_paused_itself_and_who_was_resent(app, client, celery_worker,
                                                                    mailbox):
    add_subscribers(app, 2)
    add_article(app)
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    with app.app_context():
        db.session.execute(Delivery.__table__.update().where(
            Delivery.subscriber_id == db.session.scalar(select(Subscriber.id).limit(1)))
            .values(resent_after_crash=True))
        db.session.execute(Digest.__table__.update().where(Digest.id == digest_id).values(
            status=DigestStatus.PAUSED.value,
            pause_reason="Paused automatically: the mail relay could not be reached (x)"))
        db.session.commit()
    make_editor(app)
    login(client)
    page = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert "the mail relay could not be reached" in page
    assert '<td id="n-resent_after_crash">1</td>' in page
    assert client.get(f"/admin/digests/{digest_id}/progress").json["resent_after_crash"] == 1


def test_a_lease_that_cannot_cover_a_batch_is_refused_at_start():
    settings = load_settings({"NEWSLETTER_SEND_RATE": "2", "NEWSLETTER_SEND_BATCH_SIZE": "100",
                              "NEWSLETTER_SEND_LEASE": "60"})
    with pytest.raises(ConfigError) as refused:
        check_send_settings(settings)
    for name in ("NEWSLETTER_SEND_LEASE", "NEWSLETTER_SEND_BATCH_SIZE",
                 "NEWSLETTER_SEND_RATE"):
        assert name in str(refused.value)
    assert "at least 75 s" in str(refused.value)
    check_send_settings({**settings, "SEND_LEASE": 75})
    check_send_settings({**settings, "SEND_RATE": None})


def test_the_lease_check_counts_the_slowest_relay_of_the_pool():
    pool = json.dumps([{"name": "fast", "host": "a.example.com", "rate": 50},
                       {"name": "slow", "host": "b.example.com", "rate": 2},
                       {"name": "uncapped", "host": "c.example.com"}])
    settings = load_settings({"NEWSLETTER_SMTP_RELAYS": pool, "NEWSLETTER_SEND_BATCH_SIZE": "100",
                              "NEWSLETTER_SEND_LEASE": "60"})
    with pytest.raises(ConfigError) as refused:
        check_send_settings(settings)
    assert "relay 'slow'" in str(refused.value) and "at least 75 s" in str(refused.value)
    check_send_settings({**settings, "SEND_LEASE": 75})
    # A relay without a rate of its own goes at SEND_RATE: slower than every relay here.
    with pytest.raises(ConfigError) as refused:
        check_send_settings({**settings, "SEND_LEASE": 75, "SEND_RATE": 1.0})
    assert "NEWSLETTER_SEND_RATE=1/s" in str(refused.value)
    assert "at least 150 s" in str(refused.value)


def test_a_message_that_cannot_be_built_fails_that_reader_only(app, client, celery_worker,
                                                               mailbox):
    # An address smuggled into the database past the forms (an old import, a manual
    # edit) that no header can carry.
    ids = add_subscribers(app, 3)
    with app.app_context():
        db.session.execute(Subscriber.__table__.update().where(Subscriber.id == ids[1])
                           .values(email="eve@@example.com\r\nBcc: victim@evil.example"))
        db.session.commit()
    add_article(app)
    counts = wait_until_sent(app, send_now(app))
    assert (counts["sent"], counts["failed"]) == (2, 1)
    received = sorted(m["To"].addresses[0].addr_spec for m in mailbox.wait_for(2))
    assert received == ["reader0@example.com", "reader2@example.com"]
    assert all(rcpt != ["victim@evil.example"] for _, rcpt in mailbox.envelopes)
    with app.app_context():
        error = db.session.scalar(select(Delivery.last_error).where(
            Delivery.subscriber_id == ids[1]))
    assert error.startswith("could not build the message")


def test_sweeper_resends_a_crashed_in_flight_row_once_then_records_unknown(app, client):
    ids = add_subscribers(app, 4)
    add_article(app)
    with app.app_context():
        digest = digests.compose()
        digest.status = DigestStatus.PAUSED  # so the sweep takes back rows but sends nothing
        db.session.flush()
        past = utcnow() - timedelta(seconds=5)
        for subscriber_id, attempted, resent in ((ids[0], True, False), (ids[1], True, True),
                                                 (ids[2], False, False), (ids[3], True, False)):
            db.session.add(Delivery(
                digest_id=digest.id, subscriber_id=subscriber_id, status=DeliveryStatus.SENDING,
                claim="dead-worker" if subscriber_id != ids[3] else "live-worker",
                attempts=1, resent_after_crash=resent,
                attempted_at=past if attempted else None,
                # The last one's worker is alive: its lease has not run out.
                lease_until=past if subscriber_id != ids[3] else utcnow() + timedelta(seconds=60)))
        db.session.commit()
        with heartbeat.Heartbeat("live-worker"):
            assert sweep() == 0
        rows = {row.subscriber_id: row for row in db.session.scalars(select(Delivery))}
        first, second, untried, alive = (rows[i] for i in ids)
        assert (first.status, first.resent_after_crash, first.claim) == (
            DeliveryStatus.PENDING, True, None)
        assert first.attempted_at is None and first.attempts == 1
        assert second.status == DeliveryStatus.UNKNOWN  # cut by a crash a second time
        assert (untried.status, untried.attempts, untried.resent_after_crash) == (
            DeliveryStatus.PENDING, 0, False)
        assert (alive.status, alive.claim) == (DeliveryStatus.SENDING, "live-worker")
        counts = digests.progress(digest.id)
        assert counts["resent_after_crash"] == 2 and counts["unknown"] == 1


def test_readers_answering_4xx_are_counted_across_workers_within_the_window(app, client):
    def busy(relay, domain, reader, code=451, enhanced="4.2.0"):
        return relay.deferred(domain, reader, code, enhanced)

    with app.app_context():
        first, second, third = Relay(1), Relay(1), Relay(2)  # three workers
        assert not busy(first, "example.org", "1")
        assert not busy(second, "example.org", "1")  # the same reader again: still one
        assert not busy(second, "example.org", "2")
        assert not busy(third, "example.net", "3")  # another domain counts apart
        assert not busy(third, "example.org", "3", None, None)  # a dropped connection: no reply
        assert not first.backing_off("example.org")
        assert busy(third, "example.org", "3", 452, "4.2.2")  # the third reader of example.org
        first.refresh_backoff({"example.org", "example.net"})
        assert first.backing_off("example.org") and not first.backing_off("example.net")

        # Out of the window (SEND_DOMAIN_BACKOFF), earlier readers no longer count.
        fresh = [Relay(3), Relay(3)]
        assert not busy(fresh[0], "late.example", "1")
        assert not busy(fresh[1], "late.example", "2")
        later = utcnow() + timedelta(seconds=app.config["SEND_DOMAIN_BACKOFF"] + 1)
        with time_machine.travel(later, tick=False):
            assert not busy(fresh[0], "late.example", "3")
            assert not fresh[0].backing_off("late.example")
