"""Per-topic archive pages and Atom feeds: only sent issues, only the topic's articles,
and feed authors' text escaped (it is attacker input)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import ArticleSource, Digest, DigestStatus

pytestmark = pytest.mark.usefixtures("clean_state")
ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime.now(UTC)


def issue(subject: str, titles: dict[str, list[str]], status=DigestStatus.SENT,
          days_ago: int = 0) -> None:
    """An issue carrying new articles (title -> categories)."""
    stored = [articles.add_article(ArticleInput(
        title=title, url=f"https://news.example.com/{topics.slugify(title)}",
        categories=categories, published_at=NOW), ArticleSource.API)[0]
        for title, categories in titles.items()]
    db.session.add(Digest(subject=subject, status=status, articles=stored,
                          started_at=NOW - timedelta(days=days_ago)))
    db.session.commit()


@pytest.fixture
def archive(app):
    with app.app_context():
        topics.create_topic("asia", "Asia", description="The region & its <news>.",
                            categories=["Asia-Pacific"])
        topics.create_topic("us", "United States", categories=["US"])
        issue("Week one", {"Talks in Seoul": ["Asia-Pacific"], "Vote in Ohio": ["US"]},
              days_ago=7)
        issue("Week two", {'Typhoon <script>alert("x")</script> & rain': ["Asia-Pacific"]})
        issue("Not sent yet", {"Draft news from Tokyo": ["Asia-Pacific"]},
              status=DigestStatus.DRAFT)


def test_a_topic_page_lists_its_sent_issues_and_only_its_articles(app, client, archive):
    page = client.get("/archive/topics/asia/").get_data(as_text=True)
    assert page.index("Week two") < page.index("Week one")
    assert "Talks in Seoul" in page and "Vote in Ohio" not in page
    assert "Draft news from Tokyo" not in page and "<script>alert" not in page
    assert "/archive/topics/asia/feed.atom" in page
    assert "United States" in client.get("/archive/topics/").get_data(as_text=True)
    assert "Past issues by topic" in client.get("/archive/").get_data(as_text=True)


def test_a_topic_feed_is_valid_atom_with_escaped_text(app, client, archive):
    response = client.get("/archive/topics/asia/feed.atom")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = ElementTree.fromstring(response.data)  # well-formed, whatever the titles held
    assert feed.findtext(f"{ATOM}title") == "The Newsletter: Asia"
    assert feed.findtext(f"{ATOM}subtitle") == "The region & its <news>."
    entries = feed.findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}title") for entry in entries] == ["Week two", "Week one"]
    links = [a.text for a in entries[0].iter("{http://www.w3.org/1999/xhtml}a")]
    assert links == ['Typhoon <script>alert("x")</script> & rain']
    assert b"<script>" not in response.data
    assert len({entry.findtext(f"{ATOM}id") for entry in entries}) == 2
    assert feed.findtext(f"{ATOM}updated") == entries[0].findtext(f"{ATOM}updated")


def test_an_empty_or_unknown_topic(app, client):
    with app.app_context(), unit_of_work():
        topics.create_topic("quiet", "Quiet")
    assert "No issue has carried" in client.get("/archive/topics/quiet/").get_data(as_text=True)
    feed = ElementTree.fromstring(client.get("/archive/topics/quiet/feed.atom").data)
    assert feed.findall(f"{ATOM}entry") == []
    assert client.get("/archive/topics/nope/").status_code == 404
    assert client.get("/archive/topics/nope/feed.atom").status_code == 404
