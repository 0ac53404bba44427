"""The bounce service on a real database: what a report may change, and what it may not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update

from newsletter.bounces import intake
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.mail import verp
from newsletter.models import (
    BounceEvent,
    BounceKind,
    BounceSource,
    ConsentEvent,
    ConsentSource,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Editor,
    Role,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from tests.factories import deliver, sent_issue
from tests.helpers import READER, bounce_mail


def status_of(app, subscriber_id: int) -> SubscriberStatus:
    with app.app_context():
        return db.session.get(Subscriber, subscriber_id).status


def events(app, kind: BounceKind | None = None) -> list[BounceEvent]:
    with app.app_context():
        statement = select(BounceEvent).order_by(BounceEvent.id)
        if kind:
            statement = statement.where(BounceEvent.kind == kind)
        events = list(db.session.scalars(statement))
        db.session.expunge_all()
        return events


def test_hard_bounce_marks_the_reader_bounced_with_its_reason(app, clean_state):
    digest_id, (reader,) = sent_issue(app, [READER])
    outcome = deliver(app, "exchange_hard", digest_id, reader)
    assert outcome.summary.startswith("hard")
    assert status_of(app, reader) == SubscriberStatus.BOUNCED
    (event,) = events(app)
    assert (event.kind, event.source, event.status_code) == (BounceKind.HARD, BounceSource.SMTP,
                                                             "5.1.10")
    assert "RecipientNotFound" in event.reason and event.digest_id == digest_id
    assert event.raw_message_id is not None
    # The same DSN delivered again (a retrying MTA) is one event.
    assert deliver(app, "exchange_hard", digest_id, reader).summary.startswith("duplicate")
    assert len(events(app)) == 1


@pytest.mark.parametrize("attack", ["no token", "bad signature", "other reader's token",
                                    "never mailed", "address mismatch"])
def test_forged_and_foreign_reports_are_parked_and_change_no_reader(app, clean_state, attack):
    digest_id, (reader, other) = sent_issue(app, [READER, "bob@example.net"])
    with app.app_context():
        good = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
        domain = verp.bounce_domain()
    forged = {
        "no token": dict(verp=f"bounces@{domain}", envelope=[f"bounces@{domain}"]),
        "bad signature": dict(verp=good[:-len(domain) - 3] + f"zz@{domain}",
                              envelope=[good[:-len(domain) - 3] + f"zz@{domain}"]),
        # bob's genuine token on a DSN that names alice: someone replaying bob's bounce
        "other reader's token": dict(subscriber=other),
        "never mailed": dict(digest=digest_id + 1000),
        "address mismatch": dict(recipient="carol@example.org"),
    }[attack]
    outcome = deliver(app, "postfix_hard", forged.pop("digest", digest_id),
                      forged.pop("subscriber", reader), forged.pop("recipient", READER),
                      **forged)
    assert outcome.summary.startswith("parked"), outcome.summary
    assert status_of(app, reader) == status_of(app, other) == SubscriberStatus.ACTIVE
    (event,) = events(app)
    assert event.kind is BounceKind.UNPARSED and event.subscriber_id is None
    assert event.reason and event.action == "parked: changed no reader"


def test_oversized_and_malformed_mails_are_parked_with_the_reason(app, clean_state,
                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_MAX_SIZE", 50_000)
    with app.app_context(), unit_of_work():
        big = intake.receive_mail(b"Subject: x\r\n\r\n" + b"A" * 60_000, BounceSource.IMAP)
        broken = intake.receive_mail(b"\x00\xff garbage \r\n\r\n", BounceSource.IMAP)
    assert "too large" in big.summary and broken.summary.startswith("parked")
    parked = events(app, BounceKind.UNPARSED)
    assert len(parked) == 2
    with app.app_context():
        kept = intake.raw_message(parked[0].raw_message_id)
        assert kept.size == 60_014 and len(kept.raw) == 4096  # only its beginning
        assert intake.raw_message(parked[1].raw_message_id).raw.startswith(b"\x00")


def test_soft_bounces_score_and_need_days_without_a_good_delivery(app, clean_state,
                                                                  monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_LIMIT", 3)
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_DAYS", 7)
    first, (reader,) = sent_issue(app, [READER], days_ago=14)
    second, _ = sent_issue(app, [READER], days_ago=7)
    third, _ = sent_issue(app, [READER], days_ago=0)

    def soft(digest_id, days_ago):
        outcome = deliver(app, "gmail_soft_full", digest_id, reader)
        with app.app_context():  # the report arrived then
            db.session.execute(update(BounceEvent).where(BounceEvent.id == outcome.event_ids[0])
                               .values(created_at=utcnow() - timedelta(days=days_ago)))
            db.session.commit()
        return outcome

    assert "soft bounce 1 of 3" in soft(first, 14).summary
    assert "soft bounce 2 of 3" in soft(second, 7).summary
    assert status_of(app, reader) == SubscriberStatus.ACTIVE
    assert "marked bounced" in soft(third, 0).summary
    assert status_of(app, reader) == SubscriberStatus.BOUNCED

    # An owner reactivates: the score starts again from zero.
    with app.app_context():
        editor = Editor(email="owner@example.com", password_hash="x", role=Role.OWNER)
        db.session.add(editor)
        db.session.commit()
        with unit_of_work():
            assert intake.reactivate(reader, editor)
        assert not intake.reactivate(reader, editor)  # not bounced any more
    assert status_of(app, reader) == SubscriberStatus.ACTIVE
    fourth, _ = sent_issue(app, [READER])
    assert "soft bounce 1 of 3" in deliver(app, "postfix_soft_delayed", fourth, reader).summary


def test_a_good_delivery_in_between_resets_the_soft_score(app, clean_state, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_DAYS", 0)
    first, (reader,) = sent_issue(app, [READER], days_ago=3)
    sent_issue(app, [READER], days_ago=2)  # this one did not bounce
    third, _ = sent_issue(app, [READER], days_ago=1)
    fourth, _ = sent_issue(app, [READER], days_ago=0)
    assert "1 of 3" in deliver(app, "gmail_soft_full", first, reader).summary
    assert "1 of 3" in deliver(app, "gmail_soft_full", third, reader).summary
    assert "2 of 3" in deliver(app, "postfix_soft_delayed", fourth, reader).summary
    assert status_of(app, reader) == SubscriberStatus.ACTIVE


def test_complaint_unsubscribes_with_a_consent_log_entry(app, clean_state):
    digest_id, (reader,) = sent_issue(app, [READER])
    assert deliver(app, "arf_complaint", digest_id, reader).summary == (
        "complaint: reader unsubscribed (complaint)")
    assert status_of(app, reader) == SubscriberStatus.UNSUBSCRIBED
    with app.app_context():
        (consent,) = db.session.scalars(select(ConsentEvent)).all()
        assert consent.source is ConsentSource.FEEDBACK_LOOP
        assert consent.detail == "complaint via Yahoo feedback loop"
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 1


def test_arf_without_original_changes_nothing(app, clean_state):
    digest_id, (reader,) = sent_issue(app, [READER])
    assert deliver(app, "arf_without_original", digest_id, reader).summary.startswith("parked")
    assert status_of(app, reader) == SubscriberStatus.ACTIVE


def test_erasure_removes_the_address_from_bounce_reports(app, clean_state):
    from newsletter.readers import privacy

    digest_id, (reader,) = sent_issue(app, [READER])
    deliver(app, "gmail_hard", digest_id, reader)
    with app.app_context():
        with unit_of_work():
            assert privacy.erase_subscriber(reader)
        event = db.session.scalar(select(BounceEvent))
        assert event.recipient is None and event.kind is BounceKind.HARD
        assert intake.raw_message(event.raw_message_id).raw is None


def test_guard_pauses_on_complaints_only_after_the_minimum_sample(app, clean_state,
                                                                  monkeypatch):
    from newsletter.delivery import guard
    from newsletter.issues import digests

    monkeypatch.setitem(app.config, "GUARD_MIN_SAMPLE", 500)
    emails = [f"r{n}@example.org" for n in range(600)]
    digest_id, ids = sent_issue(app, emails[:400])
    with app.app_context():  # the issue is still sending
        db.session.execute(update(Digest).where(Digest.id == digest_id)
                           .values(status=DigestStatus.SENDING))
        db.session.commit()
        address = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=ids[0]))
        raw = bounce_mail("arf_complaint", verp=address, recipient=emails[0])
        with unit_of_work():
            intake.receive_mail(raw, BounceSource.SMTP, [address])
        # 1 complaint in 400 is 0.25 %, but 400 messages are too few to judge.
        assert db.session.get(Digest, digest_id).status == DigestStatus.SENDING
        subscriber_ids = []
        for email in emails[400:]:
            subscriber = Subscriber(email=email, email_normalized=email,
                                    status=SubscriberStatus.ACTIVE)
            db.session.add(subscriber)
            db.session.flush()
            subscriber_ids.append(subscriber.id)
        db.session.execute(insert(Delivery), [
            {"digest_id": digest_id, "subscriber_id": subscriber_id, "attempts": 1,
             "status": DeliveryStatus.SENT, "sent_at": utcnow()}
            for subscriber_id in subscriber_ids])
        db.session.commit()
        assert guard.check_issue(digest_id)  # 1 in 600 = 0.17 % > 0.1 %
        digest = db.session.get(Digest, digest_id, populate_existing=True)
        assert digest.status == DigestStatus.PAUSED
        assert digest.pause_reason == ("deliverability guard: complaints 0.17 % (1 of 600 sent; "
                                       "limit 0.1 %)")
        assert not guard.check_issue(digest_id)  # paused once
        assert not guard.resume_confirmed(digest_id, confirmed=False)
        last = Subscriber(email="last@example.org", email_normalized="last@example.org",
                          status=SubscriberStatus.ACTIVE)
        db.session.add(last)
        db.session.flush()
        db.session.add(Delivery(digest_id=digest_id, subscriber_id=last.id, attempts=0,
                                status=DeliveryStatus.PENDING))  # still to send
        db.session.commit()
        assert guard.resume_confirmed(digest_id, confirmed=True)
        # From the resume on, only new messages count: the old complaint does not re-pause.
        assert not guard.check_issue(digest_id)
        assert db.session.get(Digest, digest_id, populate_existing=True).status == (
            DigestStatus.SENDING)
        digests.cancel(digest_id)


def test_old_raw_reports_are_purged_but_events_stay(app, clean_state):
    """Believed reports keep their event for good and their bytes for
    BOUNCE_RAW_RETENTION_DAYS; parked ones go whole after BOUNCE_PARKED_RETENTION_DAYS."""
    from newsletter.models import BounceMessage

    digest_id, (reader,) = sent_issue(app, [READER])
    with app.app_context():
        sender = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
        with unit_of_work():
            intake.receive_mail(bounce_mail("postfix_hard", verp=sender, recipient=READER),
                                BounceSource.SMTP, [sender])
            intake.receive_mail(b"Subject: spam to the bounce address\r\n\r\nbuy",
                                BounceSource.SMTP)
            intake.receive_mail(b"Subject: recent\r\n\r\nhello", BounceSource.SMTP)
        believed, parked_old, parked_new = db.session.scalars(
            select(BounceEvent).order_by(BounceEvent.id)).all()
        assert believed.kind is BounceKind.HARD and parked_old.kind is BounceKind.UNPARSED
        for event, days in ((believed, 91), (parked_old, 15), (parked_new, 13)):
            event.created_at = utcnow() - timedelta(days=days)
            db.session.get(BounceMessage, event.raw_message_id).received_at = event.created_at
        db.session.commit()
        with unit_of_work():
            assert intake.purge_raw_reports() == 2
        events = db.session.execute(select(BounceEvent.id, BounceMessage.raw).join(
            BounceMessage, BounceMessage.id == BounceEvent.raw_message_id)
            .order_by(BounceEvent.id)).all()
        assert [(event_id, raw) for event_id, raw in events] == [
            (believed.id, None), (parked_new.id, b"Subject: recent\r\n\r\nhello")]
        assert db.session.scalar(select(func.count()).select_from(BounceMessage)) == 2
