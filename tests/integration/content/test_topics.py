"""Topics: rules file articles, by-hand choices survive a refile, bad input is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.content.topics import TopicError
from newsletter.extensions import db
from newsletter.models import Article, ArticleSource, Cadence, Subscriber, SubscriberStatus

pytestmark = pytest.mark.usefixtures("clean_state")


def article(title: str, categories: list[str], feed_url: str | None = None) -> Article:
    stored, _ = articles.add_article(
        ArticleInput(title=title, url=f"https://news.example.com/{topics.slugify(title)}",
                     categories=categories, published_at=datetime.now(UTC)),
        ArticleSource.FEED if feed_url else ArticleSource.API, feed_url=feed_url)
    return stored


def slugs(item: Article) -> list[str]:
    db.session.refresh(item)
    return [topic.slug for topic in item.topics]


def test_articles_land_in_topics_by_category_feed_and_hand(app):
    with app.app_context():
        early = article("Early news", ["Asia-Pacific", "News"])
        asia = topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        wire = topics.create_topic("wire", "Wire", feeds=["https://wire.example.com/feed"])
        assert slugs(early) == ["asia"]  # filed when the topic was created
        later = article("From the wire", ["US"], feed_url="https://wire.example.com/feed")
        assert slugs(later) == ["wire"]
        topics.set_manual_topics(later.id, [asia.id])
        assert slugs(later) == ["asia", "wire"]
        topics.update_topic(asia.id, categories=["Europe"])  # a refile keeps the hand's choice
        assert slugs(later) == ["asia", "wire"]
        assert slugs(early) == []
        topics.update_topic(wire.id, position=0)
        assert [t.slug for t in topics.list_topics()] == ["wire", "asia"]


def test_topics_from_categories_makes_one_per_unmapped_category(app):
    with app.app_context():
        article("Sample", ["Asia-Pacific", "News", "US"])
        topics.create_topic("news", "News", categories=["News"])
        made = topics.topics_from_categories()
        assert [(t.slug, t.name, t.categories) for t in made] == [
            ("asia-pacific", "Asia-Pacific", ["Asia-Pacific"]), ("us", "US", ["US"])]
        assert topics.topics_from_categories() == []


@pytest.mark.parametrize(("slug", "name", "why"), [
    ("Bad Slug", "Name", "slug"), ("", "Name", "slug"), ("a--b", "Name", "slug"),
    ("x" * 65, "Name", "slug"), ("ok", "   ", "needs a name"), ("ok", "n" * 101, "at most"),
])
def test_bad_topics_are_refused_and_nothing_is_stored(app, slug, name, why):
    with app.app_context():
        with pytest.raises(TopicError, match=why):
            topics.create_topic(slug, name)
        assert topics.list_topics() == []


def test_duplicate_slug_and_unknown_slugs_are_named(app):
    with app.app_context():
        topics.create_topic("asia", "Asia")
        with pytest.raises(TopicError, match="already"):
            topics.create_topic("asia", "Asia again")
        with pytest.raises(TopicError, match="Unknown topic: nope"):
            topics.topics_by_slugs(["asia", "nope"])
        assert [t.slug for t in topics.topics_by_slugs(["asia", "asia"])] == ["asia"]


def test_reader_choices(app):
    with app.app_context():
        asia = topics.create_topic("asia", "Asia")
        reader = Subscriber(email="r@example.com", email_normalized="r@example.com",
                            status=SubscriberStatus.ACTIVE)
        db.session.add(reader)
        db.session.flush()
        assert reader.cadence is Cadence.WEEKLY and reader.topics == []
        topics.set_reader_topics(reader, [asia])
        topics.set_cadence(reader, topics.parse_cadence("Daily"))
        db.session.commit()
        stored = db.session.scalar(select(Subscriber))
        assert [t.slug for t in stored.topics] == ["asia"] and stored.cadence is Cadence.DAILY
        assert topics.reader_topic_slugs([stored.id]) == {stored.id: ["asia"]}
        with pytest.raises(TopicError, match="weekly"):
            topics.parse_cadence("hourly")
