"""Editors manage topics: create, edit, reorder, delete, make them from categories, put
an article in a topic by hand; reader counts on the dashboard. Bad input is a 400."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Article, ArticleSource, Cadence, Subscriber, SubscriberStatus, Topic
from tests.factories import add_editor, add_subscribers, session_client
from tests.helpers import audit_rows, csrf_token_from, wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def editor(app):
    return session_client(app, add_editor(app, "editor@example.com", "editor"))


def post(client, path: str, **data):
    return client.post(path, data={"csrf_token": csrf_token_from(client, "/admin/topics/"),
                                   **data})


def topic_rows(app) -> list[tuple[str, str, list[str], int]]:
    with app.app_context():
        return [(t.slug, t.name, t.categories, t.position) for t in topics.list_topics()]


def add_article(app, title: str, categories: list[str]) -> int:
    with app.app_context(), unit_of_work():
        stored, _ = articles.add_article(ArticleInput(
            title=title, url=f"https://news.example.com/{topics.slugify(title)}",
            categories=categories, published_at=datetime.now(UTC)), ArticleSource.API)
        return stored.id


def article_topics(app, article_id: int) -> list[str]:
    with app.app_context():
        return [topic.slug for topic in db.session.get(Article, article_id).topics]


def test_create_edit_reorder_and_delete(app, editor):
    add_article(app, "Talks in Seoul", ["Asia-Pacific"])
    created = post(editor, "/admin/topics/", name="Asia", description="The region.",
                   categories="Asia-Pacific\n", feeds="")
    assert created.status_code == 302
    post(editor, "/admin/topics/", name="United States", slug="us", categories="US")
    assert topic_rows(app) == [("asia", "Asia", ["Asia-Pacific"], 1),
                               ("us", "United States", ["US"], 2)]
    page = editor.get("/admin/topics/").get_data(as_text=True)
    assert "Asia-Pacific" in page and "United States" in page

    with app.app_context():
        us_id = topics.get_topic("us").id
    assert post(editor, f"/admin/topics/{us_id}/up").status_code == 302
    assert [row[0] for row in topic_rows(app)] == ["us", "asia"]
    edited = post(editor, f"/admin/topics/{us_id}", name="USA", description="",
                  categories="US\nAmericas", feeds="https://wire.example.com/feed")
    assert edited.status_code == 302
    assert topic_rows(app)[0] == ("us", "USA", ["US", "Americas"], 1)

    assert post(editor, f"/admin/topics/{us_id}/delete").status_code == 302
    assert [row[0] for row in topic_rows(app)] == ["asia"]
    actions = [row.action for row in audit_rows(app) if row.action.startswith("topic_")]
    assert actions == ["topic_create", "topic_create", "topic_move", "topic_update",
                       "topic_delete"]


@pytest.mark.parametrize(("data", "reason"), [
    ({"name": ""}, "A topic needs a name."),
    ({"name": "Bad", "slug": "Not A Slug"}, "A topic slug is"),
    ({"name": "Feeds", "feeds": "ftp://x.example.com/feed"}, "A feed is an http(s) URL"),
    ({"name": "Many", "categories": "\n".join(f"c{n}" for n in range(51))}, "at most 50"),
])
def test_bad_topic_input_is_a_400_and_creates_nothing(app, editor, data, reason):
    response = post(editor, "/admin/topics/", **data)
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert topic_rows(app) == []


def test_a_duplicate_slug_or_an_unknown_topic_is_refused(app, editor):
    post(editor, "/admin/topics/", name="Asia")
    again = post(editor, "/admin/topics/", name="Asia")
    assert again.status_code == 400 and "There is a topic" in again.get_data(as_text=True)
    assert editor.get("/admin/topics/999").status_code == 404
    assert post(editor, "/admin/topics/999/delete").status_code == 404
    assert post(editor, "/admin/topics/999/up").status_code == 404


def test_a_topic_readers_chose_is_not_deleted(app, editor):
    post(editor, "/admin/topics/", name="Asia")
    with app.app_context():
        reader = Subscriber(email="r@example.com", email_normalized="r@example.com",
                            status=SubscriberStatus.ACTIVE)
        db.session.add(reader)
        db.session.flush()
        topics.set_reader_topics(reader, [topics.get_topic("asia")])
        db.session.commit()
        asia_id = topics.get_topic("asia").id
    refused = editor.post(f"/admin/topics/{asia_id}/delete", follow_redirects=True,
                          data={"csrf_token": csrf_token_from(editor, "/admin/topics/")})
    assert "1 reader(s) chose" in refused.get_data(as_text=True)
    assert [row[0] for row in topic_rows(app)] == ["asia"]


def test_make_topics_from_categories(app, editor):
    add_article(app, "Talks in Seoul", ["Asia-Pacific", "News"])
    post(editor, "/admin/topics/", name="News", categories="News")
    page = editor.get("/admin/topics/").get_data(as_text=True)
    assert "Categories no topic covers yet: Asia-Pacific." in page
    assert post(editor, "/admin/topics/from-categories").status_code == 302
    assert [row[0] for row in topic_rows(app)] == ["news", "asia-pacific"]
    assert "Make a topic of each" not in editor.get("/admin/topics/").get_data(as_text=True)


def test_an_article_is_put_in_a_topic_by_hand(app, editor):
    article_id = add_article(app, "Talks in Seoul", ["Asia-Pacific"])
    post(editor, "/admin/topics/", name="Asia", categories="Asia-Pacific")
    post(editor, "/admin/topics/", name="Diplomacy")
    with app.app_context():
        diplomacy = topics.get_topic("diplomacy").id
    path = f"/admin/articles/{article_id}/edit"
    form = {"title": "Talks in Seoul", "url": "https://news.example.com/talks-in-seoul",
            "categories": "Asia-Pacific", "csrf_token": csrf_token_from(editor, path)}
    assert editor.post(path, data={**form, "topics": [str(diplomacy)]}).status_code == 302
    with app.app_context():
        assert topics.manual_topic_ids(article_id) == {diplomacy}
    assert article_topics(app, article_id) == ["asia", "diplomacy"]  # rule + by hand
    bad = editor.post(path, data={**form, "title": "Renamed", "topics": ["999"]})
    assert bad.status_code == 400 and "No such topic." in bad.get_data(as_text=True)
    assert article_topics(app, article_id) == ["asia", "diplomacy"]
    with app.app_context():
        assert db.session.get(Article, article_id).title == "Talks in Seoul"  # nothing saved


def test_the_dashboard_counts_readers_per_topic_and_cadence(app, editor):
    post(editor, "/admin/topics/", name="Asia")
    with app.app_context():
        asia = topics.get_topic("asia")
        for n, cadence in enumerate([Cadence.DAILY, Cadence.WEEKLY, Cadence.WEEKLY]):
            reader = Subscriber(email=f"r{n}@example.com", email_normalized=f"r{n}@example.com",
                                status=SubscriberStatus.ACTIVE, cadence=cadence)
            db.session.add(reader)
            db.session.flush()
            if n < 2:
                topics.set_reader_topics(reader, [asia])
        db.session.add(Subscriber(email="gone@example.com", email_normalized="gone@example.com",
                                  status=SubscriberStatus.UNSUBSCRIBED, cadence=Cadence.DAILY))
        db.session.commit()
        assert db.session.scalar(select(Topic.slug)) == "asia"
    page = editor.get("/admin/").get_data(as_text=True)
    assert "Weekly: <strong>2</strong> · Daily: <strong>1</strong>" in page
    assert "Asia: <strong>2</strong>" in page


def test_the_issue_report_splits_delivered_counts_by_topic_set(app, editor, celery_worker,
                                                              mailbox):
    add_article(app, "Talks in Seoul", ["Asia-Pacific"])
    add_article(app, "Vote in Ohio", ["US"])
    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])
    ids = add_subscribers(app, 4)
    with app.app_context():
        asia, us = topics.get_topic("asia"), topics.get_topic("us")
        for subscriber_id, chosen in zip(ids, [[asia], [asia], [us], []], strict=True):
            topics.set_reader_topics(db.session.get(Subscriber, subscriber_id), chosen)
        db.session.commit()
        with unit_of_work():
            digest_id = digests.send_now().id
    wait_until_sent(app, digest_id)
    page = editor.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    start = page.index('id="topic-sets"')
    report = page[start:page.index("</table>", start)]
    rows = [" ".join(row.split()) for row in report.split("<tr>")[2:]]
    assert rows == [
        "<td>everything (no topic chosen)</td> <td>1</td> <td>0</td> <td>0</td> <td>0</td> "
        "<td>0</td></tr>",
        "<td>Asia</td> <td>2</td> <td>0</td> <td>0</td> <td>0</td> <td>0</td></tr>",
        "<td>United States</td> <td>1</td> <td>0</td> <td>0</td> <td>0</td> <td>0</td></tr>"]


def test_preview_and_test_send_as_a_reader_of_topics(app, editor, mailbox):
    add_article(app, "Talks in Seoul", ["Asia-Pacific"])
    add_article(app, "Vote in Ohio", ["US"])
    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])
        topics.create_topic("quiet", "Quiet")
    page = editor.get("/admin/digests?as_topics=asia").get_data(as_text=True)
    text = page[page.index('id="preview-text">'):]
    assert "Talks in Seoul" in text and "Vote in Ohio" not in text
    assert "as_topics=asia" in page  # the iframe shows the same copy
    framed = editor.get("/admin/digests/preview?as_topics=asia").get_data(as_text=True)
    assert "Talks in Seoul" in framed and "Vote in Ohio" not in framed
    everything = editor.get("/admin/digests").get_data(as_text=True)
    assert "Vote in Ohio" in everything[everything.index('id="preview-text">'):]

    unknown = editor.get("/admin/digests?as_topics=asia,nope", follow_redirects=True)
    assert "Previewed as a reader of asia: unknown topic &#39;nope&#39;" in unknown.get_data(
        as_text=True)
    # The preview frame is never an error: it shows the whole issue and says why.
    for typed, why in (("nope", "unknown topic &#39;nope&#39;"),
                       ("quiet", "Nothing new for a reader of these topics")):
        framed = editor.get(f"/admin/digests/preview?as_topics={typed}")
        assert framed.status_code == 200 and why in framed.get_data(as_text=True)
        assert "Vote in Ohio" in framed.get_data(as_text=True)

    token = csrf_token_from(editor, "/admin/digests")
    sent = editor.post("/admin/digests/test", data={"csrf_token": token, "as_topics": "us"},
                       follow_redirects=True)
    assert "Test sent to editor@example.com." in sent.get_data(as_text=True)
    [test_copy] = mailbox.wait_for(1)
    body = test_copy.get_body(("plain",)).get_content()
    assert test_copy["Subject"].startswith("[Test] ")
    assert "Vote in Ohio" in body and "Talks in Seoul" not in body
    refused = editor.post("/admin/digests/test", data={"csrf_token": token,
                                                       "as_topics": "quiet"},
                          follow_redirects=True)
    assert "Nothing new for a reader of these topics" in refused.get_data(as_text=True)
    assert len(mailbox.wait_for(1)) == 1
