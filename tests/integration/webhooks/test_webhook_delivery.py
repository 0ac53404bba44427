"""Outgoing webhooks against real parts: a real HTTP receiver in a thread, the database,
Redis and (for retries on their own) a real Celery worker."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import lifecycle
from newsletter.mail.addresses import check_email
from newsletter.models import (
    BounceKind,
    BounceSource,
    ConsentSource,
    Digest,
    DigestStatus,
    EditorMail,
    EditorMailKind,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from newsletter.readers import privacy, status
from newsletter.webhooks import endpoints, events
from tests.factories import add_editor
from tests.helpers import WebhookReceiver, wait_until, webhook_signature_valid

SECRET = "a-shared-secret-of-32-bytes-long!"


@pytest.fixture
def hooks(app, clean_state):
    """Webhooks may reach the receivers on 127.0.0.1; retries come fast."""
    app.config.update(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_RETRY_DELAY=0.2,
                      WEBHOOK_DEADLINE=3.0, WEBHOOK_CONNECT_TIMEOUT=2.0)
    return app


def add_endpoint(app, url: str, event_types=events.EVENT_TYPES) -> int:
    with app.app_context():
        with unit_of_work():
            endpoint, _ = endpoints.add(url, list(event_types), SECRET)
        return endpoint.id


def join(address: str, confirmed: bool = True) -> int:
    change = status.Change.JOIN_CONFIRMED if confirmed else status.Change.JOIN
    return status.enter(check_email(address), None, change,
                        status.Origin(ConsentSource.API)).id


def deliver_in_process(app) -> list[int]:
    """Every delivery owed now, run as its task would run (no worker)."""
    from workers.tasks import deliver_webhook

    with app.app_context():
        ids = list(db.session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)))
        db.session.remove()
        for delivery_id in ids:
            deliver_webhook(delivery_id)
    return ids


def delivery_rows(app) -> list[WebhookDelivery]:
    with app.app_context():
        rows = list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        db.session.expunge_all()
        return rows


def first_time_500(receiver, request):
    """500 the first time an event id arrives, 200 after."""
    event_id = json.loads(request["body"])["id"]
    seen = sum(json.loads(r["body"])["id"] == event_id for r in receiver.requests)
    return (500, b"try again") if seen == 1 else (200, b"thanks")


def test_each_event_is_accepted_once_signed_with_the_same_id_on_retry(hooks, celery_worker):
    app = hooks
    with WebhookReceiver(first_time_500) as receiver:
        add_endpoint(app, receiver.url)
        with app.app_context():
            with unit_of_work():
                leaver = join("leaver@example.com", confirmed=False)
            with unit_of_work():
                status.change(leaver, status.Change.CONFIRM, status.Origin(ConsentSource.FORM))
            with unit_of_work():
                status.change(leaver, status.Change.UNSUBSCRIBE,
                              status.Origin(ConsentSource.ONE_CLICK))
            with unit_of_work():
                bouncer, complainer = join("bouncer@example.com"), join("angry@example.com")
            from newsletter.bounces import intake

            with unit_of_work():
                intake.record(BounceKind.HARD, BounceSource.SMTP, bouncer, reason="550 gone")
            with unit_of_work():
                intake.record(BounceKind.COMPLAINT, BounceSource.WEBHOOK, complainer,
                              provider="ses", reason="abuse")
            with unit_of_work():
                digest = Digest(subject="Monday's issue", status=DigestStatus.SENDING,
                                started_at=utcnow())
                db.session.add(digest)
            with unit_of_work():
                assert lifecycle.move(digest.id, lifecycle.Move.FINISH)
        expected = Counter({"subscriber.confirmed": 3, "subscriber.unsubscribed": 2,
                            "subscriber.bounced": 1, "subscriber.complained": 1,
                            "issue.sent": 1})

        def all_accepted():
            accepted = [e for e in receiver.events() if e["_status"] == 200]
            return len(accepted) >= sum(expected.values()) and accepted

        accepted = wait_until(all_accepted, timeout=60, what=lambda: receiver.events())

        def statuses():
            with app.app_context():
                return {row.status for row in db.session.scalars(select(WebhookDelivery))}

        # The receiver answers before the worker records the answer.
        wait_until(lambda: statuses() == {WebhookDeliveryStatus.DELIVERED}, what=statuses)
    assert Counter(event["type"] for event in accepted) == expected
    by_id = defaultdict(list)
    for request in receiver.requests:
        by_id[json.loads(request["body"])["id"]].append(request)
    assert len(by_id) == sum(expected.values())
    for event_id, requests in by_id.items():
        # Once refused, once accepted: the retry carries the same id and the same bytes.
        assert [r["status"] for r in requests] == [500, 200], event_id
        assert requests[0]["body"] == requests[1]["body"]
        for request in requests:
            assert webhook_signature_valid(SECRET, request["headers"], request["body"])
            assert request["headers"]["Newsletter-Event-Id"] == event_id
        assert not webhook_signature_valid("another-secret-of-16+", requests[1]["headers"],
                                           requests[1]["body"])
    issue = next(e for e in accepted if e["type"] == "issue.sent")
    assert issue["data"]["issue"]["subject"] == "Monday's issue"
    unsubscribed = [e["data"] for e in accepted if e["type"] == "subscriber.unsubscribed"]
    assert {d["subscriber"]["email"] for d in unsubscribed} == {"leaver@example.com",
                                                                "angry@example.com"}


def test_an_event_is_written_with_its_change_or_not_at_all(hooks):
    app = hooks
    add_endpoint(app, "http://127.0.0.1:9/hook", ["subscriber.confirmed"])
    with app.app_context():
        with unit_of_work():
            reader = join("ada@example.com", confirmed=False)
        with pytest.raises(RuntimeError), unit_of_work():
            status.change(reader, status.Change.CONFIRM, status.Origin(ConsentSource.FORM))
            raise RuntimeError("the request failed after the change")
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        with unit_of_work():  # an event nobody listens to writes nothing
            status.change(reader, status.Change.UNSUBSCRIBE, status.Origin(ConsentSource.API))
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_an_erased_reader_leaves_no_address_in_owed_events(hooks):
    app = hooks
    add_endpoint(app, "http://127.0.0.1:9/hook", ["subscriber.confirmed"])
    with app.app_context():
        with unit_of_work():
            reader = join("erase.me@example.com")
        with unit_of_work():
            assert privacy.erase_subscriber(reader)
        body = db.session.scalar(select(WebhookEvent.body))
    assert "erase.me" not in body and json.loads(body)["data"]["subscriber"]["erased"]


# --- attacks: whatever the endpoint does, an attempt fails cleanly and is retried --------

def one_attempt(app, url: str) -> WebhookDelivery:
    with app.app_context(), unit_of_work():
        join(f"r{utcnow().timestamp()}@example.com")
    deliver_in_process(app)
    [row] = delivery_rows(app)
    return row


def test_a_hanging_receiver_is_cut_off_at_the_deadline_and_retried(hooks):
    app = hooks
    app.config["WEBHOOK_DEADLINE"] = 1.0
    with WebhookReceiver(lambda receiver, request: None) as receiver:
        add_endpoint(app, receiver.url, ["subscriber.confirmed"])
        row = one_attempt(app, receiver.url)
    assert row.status is WebhookDeliveryStatus.RETRYING
    assert "no answer within 1 s" in row.last_error and row.next_attempt_at is not None


def test_a_huge_answer_is_not_read_and_fails_the_attempt(hooks):
    app = hooks
    huge = b"x" * (10 * 1024 * 1024)
    with WebhookReceiver(lambda receiver, request: (200, huge)) as receiver:
        add_endpoint(app, receiver.url, ["subscriber.confirmed"])
        row = one_attempt(app, receiver.url)
    assert row.status is WebhookDeliveryStatus.RETRYING
    assert "larger than 65536 bytes" in row.last_error


def test_a_redirect_to_a_private_address_is_not_followed(hooks):
    app = hooks
    with WebhookReceiver() as internal:
        def redirect(receiver, request):
            return 302, b"", {"Location": internal.url + "/admin"}

        with WebhookReceiver(redirect) as receiver:
            add_endpoint(app, receiver.url, ["subscriber.confirmed"])
            row = one_attempt(app, receiver.url)
        assert internal.requests == []
    assert row.status is WebhookDeliveryStatus.RETRYING
    assert row.last_status_code == 302 and "redirects are not followed" in row.last_error


def test_an_address_that_became_private_is_refused_at_delivery(hooks):
    """Checked again at each attempt (DNS can answer differently than when added)."""
    app = hooks
    with WebhookReceiver() as receiver:
        add_endpoint(app, receiver.url, ["subscriber.confirmed"])
        app.config["WEBHOOK_ALLOW_PRIVATE"] = False
        row = one_attempt(app, receiver.url)
        assert receiver.requests == []
    assert row.status is WebhookDeliveryStatus.RETRYING
    assert "not a public address" in row.last_error


def test_a_tls_error_is_a_failed_attempt(hooks):
    app = hooks
    with WebhookReceiver() as receiver:
        add_endpoint(app, receiver.url.replace("http://", "https://"), ["subscriber.confirmed"])
        row = one_attempt(app, receiver.url)
    assert row.status is WebhookDeliveryStatus.RETRYING
    assert row.last_error.startswith(("TLS", "request failed"))


def test_failing_for_the_whole_window_gives_up_disables_and_tells_the_owners(hooks):
    app = hooks
    app.config["WEBHOOK_RETRY_WINDOW"] = 60.0
    add_editor(app, "owner@example.com", "owner")
    with WebhookReceiver(lambda receiver, request: (503, b"down")) as receiver:
        endpoint_id = add_endpoint(app, receiver.url, ["subscriber.confirmed"])
        row = one_attempt(app, receiver.url)
        assert row.status is WebhookDeliveryStatus.RETRYING
        with time_machine.travel(utcnow() + timedelta(seconds=90), tick=True):
            deliver_in_process(app)
            [row] = delivery_rows(app)
            with app.app_context():
                endpoint = db.session.get(WebhookEndpoint, endpoint_id)
                mails = db.session.scalars(select(EditorMail.kind)).all()
                assert endpoint.disabled_at is not None
                # Disabled: new events are not owed to it.
                with unit_of_work():
                    join("late@example.com")
                assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    assert row.status is WebhookDeliveryStatus.FAILED
    assert row.last_error.startswith("given up after 2 attempts")
    assert mails == [EditorMailKind.WEBHOOK_DISABLED]


def test_resend_sends_the_same_event_again(hooks):
    app = hooks
    with WebhookReceiver() as receiver:
        endpoint_id = add_endpoint(app, receiver.url, ["subscriber.confirmed"])
        first = one_attempt(app, receiver.url)
        assert first.status is WebhookDeliveryStatus.DELIVERED
        with app.app_context(), unit_of_work():
            from newsletter.webhooks import deliveries

            assert deliveries.resend(first.id, endpoint_id)
            assert not deliveries.resend(first.id, endpoint_id + 1)  # not that endpoint's
        deliver_in_process(app)
        [again] = delivery_rows(app)
    assert again.status is WebhookDeliveryStatus.DELIVERED and again.attempts == 2
    assert [e["id"] for e in receiver.events()] == [receiver.events()[0]["id"]] * 2


def test_the_sweeper_publishes_deliveries_whose_task_was_lost(hooks):
    """Written on a bare connection (the send's autocommit path) or with a task that
    never arrived: beat's sweep owes them once they are past the grace period."""
    from newsletter.webhooks import deliveries

    app = hooks
    with WebhookReceiver() as receiver:
        add_endpoint(app, receiver.url, ["subscriber.bounced"])
        with app.app_context():
            with unit_of_work():
                reader = join("bare@example.com")
            with db.engine.begin() as connection:
                assert status.change_on(connection, reader, status.Change.BOUNCE,
                                        status.Origin(ConsentSource.BOUNCE), detail="550")
            assert deliveries.owed_ids() == []  # fresh: its own task may still come
            with time_machine.travel(utcnow() + timedelta(minutes=2), tick=True):
                owed = deliveries.owed_ids()
                assert len(owed) == 1
                assert deliveries.enqueue_owed() == 1
            db.session.remove()
        deliver_in_process(app)
        [row] = delivery_rows(app)
    assert row.status is WebhookDeliveryStatus.DELIVERED
    [event] = receiver.events()
    assert event["type"] == "subscriber.bounced"
    assert event["data"]["subscriber"]["email"] == "bare@example.com"


def test_an_endpoint_removed_during_an_attempt_loses_its_answer_quietly(hooks):
    from newsletter.webhooks import deliveries
    from newsletter.webhooks.sender import Answer

    app = hooks
    endpoint_id = add_endpoint(app, "http://127.0.0.1:9/hook", ["subscriber.confirmed"])
    with app.app_context():
        with unit_of_work():
            join("gone@example.com")
        delivery_id = db.session.scalar(select(WebhookDelivery.id))
        with unit_of_work():
            attempt = deliveries.claim(delivery_id)
        assert attempt is not None
        with unit_of_work():
            assert deliveries.claim(delivery_id) is None  # taken: a duplicate task stops
            assert endpoints.remove(endpoint_id)
        with unit_of_work():
            assert deliveries.finish(attempt, Answer(False, 500, 12, "HTTP 500")) is None
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_sequence_step_sent_owes_one_event_per_reader(hooks):
    from newsletter.sequences import runner, steps

    app = hooks
    with WebhookReceiver() as receiver:
        add_endpoint(app, receiver.url, ["sequence.step_sent"])
        with app.app_context():
            with unit_of_work():
                steps.create_sequence("welcome")
                step = steps.add_step("welcome", "0s", "Welcome aboard", "Hello **there**.")
                readers = [join("one@example.com"), join("two@example.com")]
            with unit_of_work():
                runner.steps_sent(step.id, readers)
            step_id = step.id
        deliver_in_process(app)
    events_seen = receiver.events()
    assert sorted(e["data"]["subscriber"]["email"] for e in events_seen) == [
        "one@example.com", "two@example.com"]
    assert {e["type"] for e in events_seen} == {"sequence.step_sent"}
    assert {(e["data"]["sequence"]["name"], e["data"]["step"]["id"]) for e in events_seen} == {
        ("welcome", step_id)}
