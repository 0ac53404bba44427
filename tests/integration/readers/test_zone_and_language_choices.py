"""A reader's time zone and language: given through the API, the form (the browser
fills the zone) and the preference centre; unknown values refused with a clear
message and nothing recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import ConsentEvent, Subscriber, SubscribeRequest, SubscriberStatus
from tests.helpers import csrf_token_from, process_subscribe_requests, subscriber

pytestmark = pytest.mark.usefixtures("clean_state")


def requests_waiting(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SubscribeRequest))


@pytest.mark.parametrize("body, why", [
    ({"timezone": "Mars/Olympus"}, "Unknown time zone 'Mars/Olympus'"),
    ({"timezone": "../../etc/passwd"}, "Unknown time zone"),
    ({"timezone": "Europe/Paris" + "x" * 100}, "Unknown time zone"),
    ({"timezone": 3}, "Unknown time zone this value"),
    ({"language": "xx"}, "Unknown language 'xx'"),
    ({"language": ["en"]}, "Unknown language this value"),
])
def test_api_refuses_an_unknown_zone_or_language_and_records_nothing(app, client, body, why):
    answer = client.post("/api/v1/subscriptions", json={"email": "a@example.com", **body})
    assert answer.status_code == 400 and why in answer.json["error"]
    assert requests_waiting(app) == 0


def test_api_zone_and_language_apply_to_the_new_reader(app, client):
    answer = client.post("/api/v1/subscriptions", json={
        "email": "tokyo@example.com", "timezone": "Asia/Tokyo", "language": "en"})
    assert answer.status_code == 202
    process_subscribe_requests(app)
    reader = subscriber(app, "tokyo@example.com")
    assert (reader.timezone, reader.language) == ("Asia/Tokyo", "en")
    with app.app_context():
        detail = db.session.scalar(select(ConsentEvent.detail))
    assert "time zone: Asia/Tokyo" in detail and "language: en" in detail


def test_the_form_carries_the_browsers_zone_and_ignores_one_it_does_not_know(app, client):
    page = client.get("/subscribe").get_data(as_text=True)
    assert 'name="timezone"' in page and "data-browser-timezone" in page
    assert "/static/web.js" in page and "<script>" not in page  # no inline script (CSP)
    for email, zone in (("ny@example.com", "America/New_York"), ("odd@example.com", "Odd/Zone")):
        token = csrf_token_from(client, "/subscribe")
        answer = client.post("/subscribe", data={"email": email, "timezone": zone,
                                                 "csrf_token": token})
        assert answer.status_code == 302  # the reader cannot fix a hidden field: not refused
    process_subscribe_requests(app)
    assert subscriber(app, "ny@example.com").timezone == "America/New_York"
    assert subscriber(app, "odd@example.com").timezone is None


def test_the_preference_centre_sets_and_clears_the_zone(app, client):
    client.post("/api/v1/subscriptions", json={"email": "p@example.com"})
    process_subscribe_requests(app)
    with app.app_context(), unit_of_work():
        reader = db.session.scalar(select(Subscriber))
        reader.status = SubscriberStatus.ACTIVE
        key = reader.unsubscribe_key
    page = f"/unsubscribe/{key}/preferences"
    token = csrf_token_from(client, page)
    bad = client.post(page + "/locale", data={"csrf_token": token, "timezone": "Nowhere"})
    assert bad.status_code == 400 and "Unknown time zone" in bad.get_data(as_text=True)
    good = client.post(page + "/locale", data={"csrf_token": token, "timezone": "Asia/Tokyo"})
    assert good.status_code == 302
    assert subscriber(app, "p@example.com").timezone == "Asia/Tokyo"
    client.post(page + "/locale", data={"csrf_token": token, "timezone": ""})
    assert subscriber(app, "p@example.com").timezone is None
