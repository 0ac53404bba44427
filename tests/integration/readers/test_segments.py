"""Segments against a real database: every field selects the right readers, nothing a
user types becomes SQL, and an issue sent to a segment (CLI, API, workspace) reaches
only its readers through a real worker and SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import (
    ArticleSource,
    Cadence,
    Click,
    ClickKind,
    Delivery,
    Digest,
    Segment,
    Subscriber,
    Verdict,
)
from newsletter.readers import segments, subscriber_lists
from tests.factories import api_token, make_editor
from tests.helpers import csrf_token_from, login, wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state")

LIST = (b"email,name,topics,plan,city\n"
        b"asia@example.com,Asia Reader,asia,pro,Tokyo\n"
        b"europe@example.com,Europe Reader,europe,free,Paris\n"
        b"both@example.com,Both,asia;europe,,\n"
        b"all@example.com,Everything,,pro,\n")


def readers(app) -> None:
    """Four confirmed readers from a CSV with two extra columns (attributes), two topics
    and a third topic nobody chose."""
    with app.app_context():
        with unit_of_work():
            for slug in ("asia", "europe", "africa"):
                topics.create_topic(slug, slug.title(), categories=[slug.title()])
        with unit_of_work():
            report = subscriber_lists.import_csv(LIST, "moved from our old tool")
        assert report.valid == 4, report.invalid


def publish(app) -> None:
    """One new article in both chosen topics: every reader has something new."""
    with app.app_context(), unit_of_work():
        articles.add_article(ArticleInput(
            title="Talks in Geneva and Tokyo", url="https://news.example.com/talks",
            summary="Diplomats met.", categories=["Asia", "Europe"],
            published_at=datetime.now(UTC)), ArticleSource.API)


def matching(app, *conditions: dict) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(Subscriber.email).where(
            *segments.where(list(conditions)))))


def test_each_field_selects_its_readers(app):
    readers(app)
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).where(Subscriber.email == "both@example.com")
                           .values(cadence=Cadence.DAILY))
        # Subscribed long ago: imported readers from another tool.
        db.session.execute(update(Subscriber).where(Subscriber.email == "all@example.com")
                           .values(confirmed_at=datetime(2020, 1, 1, tzinfo=UTC),
                                   created_at=datetime(2020, 1, 1, tzinfo=UTC)))
    # A reader who chose no topic gets everything, so reads every topic.
    assert matching(app, {"field": "topic", "op": "is", "value": "asia"}) == {
        "asia@example.com", "both@example.com", "all@example.com"}
    assert matching(app, {"field": "topic", "op": "is_not", "value": "asia"}) == {
        "europe@example.com"}
    assert matching(app, {"field": "cadence", "op": "is", "value": "daily"}) == {
        "both@example.com"}
    assert matching(app, {"field": "attribute", "key": "plan", "op": "is", "value": "pro"}) == {
        "asia@example.com", "all@example.com"}
    assert matching(app, {"field": "attribute", "key": "city", "op": "exists"}) == {
        "asia@example.com", "europe@example.com"}
    assert matching(app, {"field": "attribute", "key": "plan", "op": "is_not",
                          "value": "pro"}) == {"europe@example.com", "both@example.com"}
    assert matching(app, {"field": "subscribed", "op": "before", "value": "2021-01-01"}) == {
        "all@example.com"}
    assert matching(app, {"field": "subscribed", "op": "after", "value": "2021-01-01"}) == {
        "asia@example.com", "europe@example.com", "both@example.com"}
    assert matching(app, {"field": "source", "op": "is", "value": "import"}) == {
        "asia@example.com", "europe@example.com", "both@example.com", "all@example.com"}
    assert matching(app, {"field": "source", "op": "is", "value": "form"}) == set()
    # ANDed.
    assert matching(app, {"field": "topic", "op": "is", "value": "asia"},
                    {"field": "attribute", "key": "plan", "op": "is", "value": "pro"},
                    {"field": "subscribed", "op": "after", "value": "2021-01-01"}) == {
        "asia@example.com"}


INJECTIONS = ["pro' OR '1'='1", "pro\"; DROP TABLE subscribers; --", "%", "_", "*"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_typed_value_is_only_ever_a_value(app, value):
    readers(app)
    assert matching(app, {"field": "attribute", "key": "plan", "op": "is", "value": value}) == set()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 4


@pytest.mark.parametrize("condition, message", [
    ({"field": "email", "op": "is", "value": "x"}, "the field must be one of"),
    ({"field": "cadence", "op": "like", "value": "weekly"}, "the operator must be one of"),
    ({"field": "attribute", "key": "plan) OR (1=1", "op": "exists"}, "attribute's name"),
    ({"field": "attribute", "key": "plan", "op": "is", "value": "a\x00b"}, "control character"),
    ({"field": "topic", "op": "is", "value": "antarctica"}, "There is no topic 'antarctica'"),
    ({"field": "subscribed", "op": "after", "value": "last week"}, "YYYY-MM-DD"),
    ({"field": "clicked", "op": "within", "value": 30}, "not recorded per reader"),
])
def test_bad_conditions_are_refused_with_a_clear_message(app, condition, message):
    readers(app)
    with app.app_context(), pytest.raises(segments.SegmentError, match=message):
        segments.create("bad", [condition])


def test_clicked_within_counts_recent_human_clicks_when_readers_are_tracked(app,
                                                                           monkeypatch):
    readers(app)
    publish(app)
    monkeypatch.setitem(app.config, "TRACK_READERS", True)
    now = datetime.now(UTC)
    with app.app_context(), unit_of_work():
        digest_id = digests.send_now().id
        ids = dict(db.session.execute(select(Subscriber.email, Subscriber.id)).all())
        for number, (email, verdict, days_ago) in enumerate([
                ("asia@example.com", Verdict.HUMAN, 2),
                ("europe@example.com", Verdict.BOT, 2),  # a link checker is not engagement
                ("both@example.com", Verdict.HUMAN, 40)]):  # too long ago
            db.session.add(Click(record_key=f"k{number}", digest_id=digest_id, link=1,
                                 copy=number, kind=ClickKind.CLICK, verdict=verdict,
                                 reason="test", at=now - timedelta(days=days_ago),
                                 subscriber_id=ids[email]))
    assert matching(app, {"field": "clicked", "op": "within", "value": 30}) == {
        "asia@example.com"}
    assert matching(app, {"field": "clicked", "op": "within", "value": 60}) == {
        "asia@example.com", "both@example.com"}


def test_cli_creates_and_lists_segments_with_counts(app):
    readers(app)
    runner = app.test_cli_runner()
    made = runner.invoke(args=["segments", "create", "Asia daily", "--topic", "asia",
                               "--cadence", "weekly", "--subscribed-after", "2020-06-01"])
    assert made.exit_code == 0, made.output
    assert "3 reader(s) now" in made.output
    listed = runner.invoke(args=["segments", "list"])
    assert listed.exit_code == 0 and listed.output.startswith("Asia daily\t3\t")
    again = runner.invoke(args=["segments", "create", "Asia daily", "--topic", "asia"])
    assert again.exit_code == 1 and "already" in again.output
    missing = runner.invoke(args=["segments", "create", "Nowhere", "--topic", "antarctica"])
    assert missing.exit_code == 1 and "There is no topic 'antarctica'" in missing.output
    nothing = runner.invoke(args=["segments", "create", "Everyone"])
    assert nothing.exit_code == 1 and "at least one condition" in nothing.output


def test_cli_send_to_a_segment_reaches_only_its_readers(app, celery_worker, mailbox):
    readers(app)
    publish(app)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["segments", "create", "Pro", "--topic", "europe"]).exit_code == 0
    with app.app_context(), unit_of_work():
        segment = segments.find("Pro")
        segment.conditions = segments.check_conditions(
            [{"field": "attribute", "key": "plan", "op": "is", "value": "pro"}])
    sent = runner.invoke(args=["digest", "send", "--segment", "Pro", "--segment-only"])
    assert sent.exit_code == 0, sent.output
    assert "to 2 subscriber(s) of segment 'Pro'" in sent.output
    with app.app_context():
        digest = db.session.scalar(select(Digest))
        assert digest.segment.name == "Pro" and digest.segment_only
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 2
    wait_until_sent(app, digest.id)
    received = {message["To"].addresses[0].addr_spec for message in mailbox.wait_for(2)}
    assert received == {"asia@example.com", "all@example.com"}
    # Segment only: not listed in the public archive, the report says the segment.
    client = app.test_client()
    assert f"/archive/{digest.id}" not in client.get("/archive/").get_data(as_text=True)
    make_editor(app)
    login(client)
    report = client.get(f"/admin/digests/{digest.id}").get_data(as_text=True)
    assert "To segment <strong>Pro</strong>" in report
    assert "kept out of the public archive" in report


def test_an_empty_segment_or_one_whose_topic_is_gone_is_not_sent(app):
    readers(app)
    publish(app)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["segments", "create", "Africa", "--topic", "africa"]).exit_code == 0
    assert runner.invoke(args=["segments", "create", "Daily",
                               "--cadence", "daily"]).exit_code == 0
    empty = runner.invoke(args=["digest", "send", "--segment", "Daily", "--no-wait"])
    assert empty.exit_code == 1
    assert "The segment 'Daily' has no active reader: nothing to send." in empty.output
    with app.app_context(), unit_of_work():
        topics.delete_topic(db.session.scalar(select(topics.Topic.id).where(
            topics.Topic.slug == "africa")))
    gone = runner.invoke(args=["digest", "send", "--segment", "Africa", "--no-wait"])
    assert gone.exit_code == 1 and (
        "The segment 'Africa' cannot be used: There is no topic 'africa'.") in gone.output
    unknown = runner.invoke(args=["digest", "send", "--segment", "Nobody", "--no-wait"])
    assert unknown.exit_code == 1 and "There is no segment named 'Nobody'" in unknown.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0
    assert "unusable: The segment 'Africa' cannot be used" in runner.invoke(
        args=["segments", "list"]).output


def test_api_creates_a_segment_and_sends_an_issue_to_it(app):
    readers(app)
    publish(app)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(app)}"}
    made = client.post("/api/v1/segments", headers=headers, json={
        "name": "Europe", "conditions": [{"field": "topic", "op": "is", "value": "europe"}]})
    assert made.status_code == 201 and made.json["readers"] == 3
    bad = client.post("/api/v1/segments", headers=headers, json={
        "name": "Bad", "conditions": [{"field": "topic", "op": "is", "value": "mars"}]})
    assert bad.status_code == 400 and "There is no topic 'mars'" in bad.json["error"]
    refused = client.post("/api/v1/issues", headers=headers, json={"segment": "Nobody"})
    assert refused.status_code == 400
    wrong = client.post("/api/v1/issues", headers=headers, json={"segment": ["Europe"]})
    assert wrong.status_code == 400
    sent = client.post("/api/v1/issues", headers=headers, json={"segment": "Europe"})
    assert sent.status_code == 201 and sent.json["recipients"] == 3
    # Not segment-only: the archive shows it to everyone.
    assert f"/archive/{sent.json['id']}" in client.get("/archive/").get_data(as_text=True)
    listed = client.get("/api/v1/segments", headers=headers)
    assert listed.json["segments"][0]["name"] == "Europe"


def test_workspace_builds_a_segment_with_a_live_count_and_sends_to_it(app):
    readers(app)
    publish(app)
    make_editor(app)
    client = app.test_client()
    login(client)
    token = csrf_token_from(client, "/admin/segments/")
    count = client.post("/admin/segments/count", data={"csrf_token": token, "topic": "asia",
                                                       "attribute_key": "plan",
                                                       "attribute_value": "pro"})
    assert count.json["count"] == 2
    bad = client.post("/admin/segments/count", data={"csrf_token": token,
                                                     "subscribed_after": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json["error"]
    saved = client.post("/admin/segments/", data={"csrf_token": token, "name": "Asia pro",
                                                  "topic": "asia", "attribute_key": "plan",
                                                  "attribute_value": "pro"})
    assert saved.status_code == 302
    assert "Asia pro" in client.get("/admin/segments/").get_data(as_text=True)
    token = csrf_token_from(client, "/admin/digests")
    unknown = client.post("/admin/digests/send", data={"csrf_token": token, "segment": "Nope"})
    assert unknown.status_code == 400
    assert "There is no segment named" in unknown.get_data(as_text=True)
    confirm = client.post("/admin/digests/send", data={"csrf_token": token,
                                                       "segment": "Asia pro"})
    page = confirm.get_data(as_text=True)
    assert confirm.status_code == 200
    assert "to 2 readers of segment ‘Asia pro’?" in page
    sent = client.post("/admin/digests/send", data={"csrf_token": token, "segment": "Asia pro",
                                                    "confirmed": "2"})
    assert sent.status_code == 302
    with app.app_context():
        digest = db.session.scalar(select(Digest))
        assert digest.recipients == 2 and not digest.segment_only


def test_a_scheduled_segment_issue_names_its_segment(app):
    readers(app)
    publish(app)
    with app.app_context(), unit_of_work():
        segment = segments.create("Europe", [{"field": "topic", "op": "is", "value": "europe"}])
        digest = digests.schedule(datetime.now(UTC) + timedelta(hours=1), segment=segment)
        assert digest.segment_id == segment.id
    with app.app_context():
        assert db.session.scalar(select(Segment.name)) == "Europe"


@pytest.mark.parametrize("data, message", [
    (b"email,First Name\nx@example.com,Ann\n", "The column 'first name' cannot be an attribute"),
    (b"email,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u\nx@example.com\n", "At most 20 columns"),
])
def test_an_import_whose_extra_column_cannot_be_an_attribute_is_refused(app, data, message):
    with app.app_context(), pytest.raises(subscriber_lists.ListFileError, match=message):
        subscriber_lists.import_csv(data, "consent")


def test_an_attribute_cell_too_long_is_reported_on_its_line(app):
    data = b"email,plan\nok@example.com,pro\nlong@example.com," + b"x" * 201 + b"\n"
    with app.app_context(), unit_of_work():
        report = subscriber_lists.import_csv(data, "consent")
    assert report.valid == 1 and report.invalid[0][0] == 3
    assert "over 200 characters" in report.invalid[0][2]
    with app.app_context():
        assert db.session.scalar(select(Subscriber.attributes)) == {"plan": "pro"}


def test_an_import_sets_language_and_zone_and_refuses_unknown_ones(app):
    app.config["LANGUAGES"] = ("en", "fr")
    data = (b"email,language,timezone\n"
            b"fr@example.com,fr,Europe/Paris\n"
            b"de@example.com,de,\n"
            b"mars@example.com,,Mars/Olympus\n")
    with app.app_context(), unit_of_work():
        report = subscriber_lists.import_csv(data, "consent")
    assert report.valid == 1
    assert [(line, why) for line, _, why in report.invalid] == [
        (3, "Unknown language 'de': choose one of en, fr."),
        (4, "Unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Paris.")]
    with app.app_context():
        assert db.session.execute(select(Subscriber.language, Subscriber.timezone)).one() == (
            "fr", "Europe/Paris")
    assert matching(app, {"field": "language", "op": "is", "value": "fr"}) == {"fr@example.com"}
    assert matching(app, {"field": "timezone", "op": "is", "value": "Europe/Paris"}) == {
        "fr@example.com"}
