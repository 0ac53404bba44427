"""A reader's topics and cadence through the subscribe form and the JSON API.

Choices travel with the subscribe request, so the answer and the work are the
same whatever the address's state; they apply only to an address not yet
confirmed, so nobody can change an active reader's choices by asking for them.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import (
    Cadence,
    ConsentEvent,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
)
from tests.helpers import csrf_token_from, link_from, process_subscribe_requests, subscriber


@pytest.fixture
def two_topics(app, clean_state):
    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])


def reader_choices(app, email: str) -> tuple[list[str], Cadence, SubscriberStatus]:
    with app.app_context():
        found = db.session.scalar(select(Subscriber).where(Subscriber.email_normalized == email))
        return [topic.slug for topic in found.topics], found.cadence, found.status


def requests_waiting(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SubscribeRequest))


def test_api_choices_apply_when_the_reader_confirms(app, client, two_topics, celery_worker,
                                                     mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    answer = client.post("/api/v1/subscriptions", json={
        "email": "kim@example.com", "topics": ["us", "asia"], "cadence": "daily"})
    assert answer.status_code == 202
    confirm_path = link_from(mailbox.wait_for(1)[0], "/confirm/").removeprefix("http://localhost")
    assert reader_choices(app, "kim@example.com") == (["asia", "us"], Cadence.DAILY,
                                                      SubscriberStatus.PENDING)
    client.post(confirm_path, data={"csrf_token": csrf_token_from(client, confirm_path)})
    assert reader_choices(app, "kim@example.com") == (["asia", "us"], Cadence.DAILY,
                                                      SubscriberStatus.ACTIVE)
    with app.app_context():  # the consent log says what the reader asked for
        assert db.session.scalar(select(ConsentEvent.detail).order_by(ConsentEvent.id)) == \
            "topics: asia, us; cadence: daily"


def test_an_anonymous_request_does_not_change_an_active_readers_choices(app, client,
                                                                         two_topics,
                                                                         monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    client.post("/api/v1/subscriptions", json={"email": "lee@example.com", "topics": ["asia"]})
    process_subscribe_requests(app)
    with app.app_context():
        db.session.execute(db.update(Subscriber).values(status=SubscriberStatus.ACTIVE))
        db.session.commit()
    fresh = client.post("/api/v1/subscriptions", json={"email": "new@example.com",
                                                       "topics": ["us"], "cadence": "daily"})
    again = client.post("/api/v1/subscriptions", json={"email": "lee@example.com",
                                                       "topics": ["us"], "cadence": "daily"})
    # The same answer for a new and an active address: no enumeration.
    assert (again.status_code, again.get_json()) == (fresh.status_code, fresh.get_json())
    process_subscribe_requests(app)
    assert reader_choices(app, "lee@example.com") == (["asia"], Cadence.WEEKLY,
                                                      SubscriberStatus.ACTIVE)
    assert reader_choices(app, "new@example.com")[:2] == (["us"], Cadence.DAILY)


@pytest.mark.parametrize(("body", "why"), [
    ({"topics": ["asia", "nope"]}, "Unknown topic: nope"),
    ({"topics": "asia"}, "list of topic slugs"),
    ({"topics": [1, 2]}, "list of topic slugs"),
    ({"topics": ["asia"] * 101}, "at most 100"),
    ({"cadence": "hourly"}, "'weekly' or 'daily'"),
    ({"cadence": 7}, "'weekly' or 'daily'"),
    ({"cadence": "daily"}, "There is no daily issue"),  # no DAILY_SCHEDULE
])
def test_api_refuses_bad_choices_and_records_nothing(app, client, two_topics, body, why):
    answer = client.post("/api/v1/subscriptions", json={"email": "kim@example.com", **body})
    assert answer.status_code == 400
    assert why in answer.get_json()["error"]
    assert requests_waiting(app) == 0


def test_form_offers_topics_and_cadence_and_carries_the_choice(app, client, two_topics,
                                                               monkeypatch):
    monkeypatch.setitem(app.config, "DAILY_SCHEDULE", "07:00 UTC")
    page = client.get("/subscribe").get_data(as_text=True)
    assert 'name="topics" value="asia"' in page and "United States" in page
    assert 'name="cadence" value="daily"' in page
    token = csrf_token_from(client, "/subscribe")
    sent = client.post("/subscribe", data={"email": "ana@example.com", "csrf_token": token,
                                           "choices": "1", "topics": ["us"],
                                           "cadence": "daily"})
    assert sent.status_code == 302
    process_subscribe_requests(app)
    assert reader_choices(app, "ana@example.com")[:2] == (["us"], Cadence.DAILY)

    bad = client.post("/subscribe", data={"email": "bo@example.com", "csrf_token": token,
                                          "choices": "1", "topics": ["asia", "../x"]})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "Unknown topic" in text and 'value="asia" checked' in text  # the choice is kept
    assert requests_waiting(app) == 0


def test_form_without_topics_or_daily_issue_looks_as_before(app, client):
    page = client.get("/subscribe").get_data(as_text=True)
    assert 'name="topics"' not in page and 'name="cadence"' not in page
    token = csrf_token_from(client, "/subscribe")
    client.post("/subscribe", data={"email": "old@example.com", "csrf_token": token})
    process_subscribe_requests(app)
    found = subscriber(app, "old@example.com")
    assert found.cadence is Cadence.WEEKLY
    assert reader_choices(app, "old@example.com")[0] == []  # everything
    # A daily choice the form did not offer is refused, not silently turned weekly.
    forged = client.post("/subscribe", data={"email": "day@example.com", "csrf_token": token,
                                             "cadence": "daily"})
    assert forged.status_code == 400
    assert "There is no daily issue" in forged.get_data(as_text=True)
    assert requests_waiting(app) == 0


def test_csv_import_reads_topics_and_export_writes_them(app, client, two_topics):
    runner = app.test_cli_runner()
    imported = runner.invoke(args=["subscribers", "import", "-", "--consent", "moved", "--here"],
                             input="email,name,topics\nada@example.com,Ada,us; asia\n"
                                   "bo@example.com,Bo,\ncy@example.com,Cy,asia;nope\n")
    assert "added 3, duplicates 0, invalid 0" in imported.output
    assert "line 4: 'cy@example.com': unknown topic 'nope': left out" in imported.output
    assert reader_choices(app, "cy@example.com")[0] == ["asia"]  # the row's address is kept
    assert reader_choices(app, "ada@example.com")[0] == ["asia", "us"]
    assert reader_choices(app, "bo@example.com")[0] == []
    exported = runner.invoke(args=["subscribers", "export"]).output.splitlines()
    assert exported[0].endswith(",topics")
    assert exported[1].startswith("ada@example.com,Ada,active,") and exported[1].endswith(
        ",asia;us")
    assert exported[2].endswith(",")


def test_topics_cli_contract(app, client):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["topics", "create", "asia-pacific", "--name", "Asia-Pacific",
                               "--categories", "Asia-Pacific, Asia"])
    assert made.exit_code == 0, made.output
    runner.invoke(args=["topics", "create", "us", "--name", "US"])
    runner.invoke(args=["topics", "update", "us", "--position", "0"])
    assert runner.invoke(args=["topics", "list"]).output.splitlines() == [
        "us\tUS\t0\t\t", "asia-pacific\tAsia-Pacific\t0\tAsia-Pacific,Asia\t"]
    for bad, why in ((["create", "Bad Slug", "--name", "X"], "slug"),
                     (["create", "ok", "--name", " "], "needs a name"),
                     (["create", "us", "--name", "Again"], "already"),
                     (["update", "nope", "--name", "X"], "Unknown topic"),
                     (["create", "ok"], "--name")):
        result = runner.invoke(args=["topics", *bad])
        assert result.exit_code != 0 and why in result.output, (bad, result.output)
    assert len(runner.invoke(args=["topics", "list"]).output.splitlines()) == 2
