"""Topics: what articles are about, and which of them each reader wants.

An article is in a topic when one of its categories or its feed is in the topic's
rules, or when an editor put it there by hand (``manual`` rows, kept when the rules
are recomputed). A reader with no topics gets everything: that is every reader
until they choose, so lists that predate topics keep working.

Nothing here commits: the editors' views and commands, and the readers' boundaries,
commit what these functions write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from flask import current_app
from sqlalchemy import delete, func, insert, select, update

from newsletter.extensions import db
from newsletter.mail.headers import clean_text
from newsletter.models import (
    Article,
    Cadence,
    Subscriber,
    SubscriberStatus,
    Topic,
    article_topics,
    subscriber_topics,
)

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_SLUG = 64
MAX_NAME = 100
MAX_DESCRIPTION = 500
MAX_RULES = 50  # categories or feeds per topic


class TopicError(ValueError):
    """Bad topic input; the message says what to fix."""


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", clean_text(name).lower()).strip("-")[:MAX_SLUG].strip("-")


def _slug(slug: str) -> str:
    slug = str(slug).strip()
    if not SLUG.fullmatch(slug) or len(slug) > MAX_SLUG:
        raise TopicError(f"A topic slug is 1-{MAX_SLUG} lowercase letters, digits and "
                         f"single hyphens, e.g. 'asia-pacific'; got {slug[:80]!r}.")
    return slug


def _name(name: str) -> str:
    name = clean_text(name)
    if not name:
        raise TopicError("A topic needs a name.")
    if len(name) > MAX_NAME:
        raise TopicError(f"A topic name is at most {MAX_NAME} characters.")
    return name


def _rules(values: Iterable[str], what: str) -> list[str]:
    cleaned = list(dict.fromkeys(clean_text(value)[:2048] for value in values
                                 if clean_text(value)))
    if len(cleaned) > MAX_RULES:
        raise TopicError(f"A topic maps at most {MAX_RULES} {what}.")
    return cleaned


def _feeds(values: Iterable[str]) -> list[str]:
    feeds = _rules(values, "feeds")
    for url in feeds:
        if not url.startswith(("http://", "https://")):
            raise TopicError(f"A feed is an http(s) URL; got {url[:80]!r}.")
    return feeds


def list_topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.position, Topic.id)))


def get_topic(slug: str) -> Topic | None:
    return db.session.scalar(select(Topic).where(Topic.slug == str(slug)))


def unknown_slugs(slugs: Iterable[str]) -> list[str]:
    """The slugs among ``slugs`` that name no topic (a preview names them and goes on)."""
    wanted = list(dict.fromkeys(str(slug).strip() for slug in slugs if str(slug).strip()))
    if not wanted:
        return []
    found = set(db.session.scalars(select(Topic.slug).where(Topic.slug.in_(wanted))))
    return [slug for slug in wanted if slug not in found]


def topics_by_slugs(slugs: Iterable[str]) -> list[Topic]:
    """The topics named, in topic order; TopicError names any slug that is not a topic."""
    wanted = list(dict.fromkeys(str(slug).strip() for slug in slugs if str(slug).strip()))
    if not wanted:
        return []
    found = {topic.slug: topic for topic in db.session.scalars(
        select(Topic).where(Topic.slug.in_(wanted)))}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise TopicError("Unknown topic: " + ", ".join(slug[:64] for slug in unknown[:5]))
    return sorted(found.values(), key=lambda topic: (topic.position, topic.id))


def create_topic(slug: str, name: str, *, description: str = "",
                 categories: Iterable[str] = (), feeds: Iterable[str] = ()) -> Topic:
    """Add a topic at the end of the order and file the existing articles its rules match."""
    topic = Topic(slug=_slug(slug), name=_name(name),
                  description=clean_text(description)[:MAX_DESCRIPTION],
                  categories=_rules(categories, "categories"), feeds=_feeds(feeds))
    if get_topic(topic.slug) is not None:
        raise TopicError(f"There is a topic {topic.slug!r} already.")
    topic.position = (db.session.scalar(select(func.max(Topic.position))) or 0) + 1
    db.session.add(topic)
    db.session.flush()
    _refile(topic)
    return topic


def update_topic(topic_id: int, *, name: str | None = None, description: str | None = None,
                 categories: Iterable[str] | None = None, feeds: Iterable[str] | None = None,
                 position: int | None = None) -> Topic:
    """Change what is given; a change of rules refiles the articles (manual rows stay)."""
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        raise TopicError("No such topic.")
    if name is not None:
        topic.name = _name(name)
    if description is not None:
        topic.description = clean_text(description)[:MAX_DESCRIPTION]
    if position is not None:
        topic.position = int(position)
    if categories is not None or feeds is not None:
        if categories is not None:
            topic.categories = _rules(categories, "categories")
        if feeds is not None:
            topic.feeds = _feeds(feeds)
        db.session.flush()
        _refile(topic)
    return topic


def topics_from_categories() -> list[Topic]:
    """One topic per article category no topic maps yet ("make topics from categories")."""
    mapped = {category for topic in list_topics() for category in topic.categories}
    taken = set(db.session.scalars(select(Topic.slug)))
    created = []
    for category in sorted(_all_categories() - mapped, key=str.lower):
        slug = slugify(category)
        if not slug or slug in taken:
            continue  # e.g. "U.S." and "US": the editor maps the second by hand
        taken.add(slug)
        created.append(create_topic(slug, category[:MAX_NAME], categories=[category]))
    return created


def _all_categories() -> set[str]:
    return {category for categories in db.session.scalars(select(Article.categories))
            for category in categories or ()}


def _matches(topic: Topic, categories: Iterable[str], feed_url: str | None) -> bool:
    return (feed_url is not None and feed_url in topic.feeds) or \
        not set(topic.categories).isdisjoint(categories or ())


def _refile(topic: Topic) -> None:
    """Recompute the rule rows of one topic over every article; manual rows stay."""
    db.session.execute(delete(article_topics).where(
        article_topics.c.topic_id == topic.id, article_topics.c.manual.is_(False)))
    manual = set(db.session.scalars(select(article_topics.c.article_id).where(
        article_topics.c.topic_id == topic.id)))
    matching = [{"article_id": article_id, "topic_id": topic.id, "manual": False}
                for article_id, categories, feed_url in db.session.execute(
                    select(Article.id, Article.categories, Article.feed_url))
                if article_id not in manual and _matches(topic, categories, feed_url)]
    if matching:
        db.session.execute(insert(article_topics), matching)


def file_article(article: Article) -> None:
    """Put a new or edited article into the topics whose rules match it (before commit)."""
    db.session.flush()
    db.session.execute(delete(article_topics).where(
        article_topics.c.article_id == article.id, article_topics.c.manual.is_(False)))
    manual = set(db.session.scalars(select(article_topics.c.topic_id).where(
        article_topics.c.article_id == article.id)))
    rows = [{"article_id": article.id, "topic_id": topic.id, "manual": False}
            for topic in list_topics()
            if topic.id not in manual and _matches(topic, article.categories, article.feed_url)]
    if rows:
        db.session.execute(insert(article_topics), rows)
    db.session.expire(article, ["topics"])


def set_manual_topics(article_id: int, topic_ids: Iterable[int]) -> None:
    """An editor's choice of topics for one article, on top of what the rules give."""
    article = db.session.get(Article, article_id)
    if article is None:
        raise TopicError("No such article.")
    topic_ids = set(topic_ids)
    known = set(db.session.scalars(select(Topic.id).where(Topic.id.in_(topic_ids))))
    if known != topic_ids:
        raise TopicError("No such topic.")
    db.session.execute(delete(article_topics).where(article_topics.c.article_id == article_id))
    if topic_ids:
        db.session.execute(insert(article_topics), [
            {"article_id": article_id, "topic_id": topic_id, "manual": True}
            for topic_id in sorted(topic_ids)])
    file_article(article)  # the rule rows the editor did not pin come back


# --- a reader's choices. These add to the caller's transaction (which also writes the
# consent log or the import's own rows).

def offered_cadences() -> list[Cadence]:
    """The cadences a reader may choose: daily only while there is a daily issue (a
    reader who chose it without one would silently get the weekly)."""
    return [Cadence.WEEKLY, *([Cadence.DAILY] if current_app.config["DAILY_SCHEDULE"] else [])]


def parse_offered_cadence(value: str | None) -> Cadence:
    """A cadence from a reader's form or request: one that exists, or TopicError."""
    cadence = parse_cadence(value)
    if cadence not in offered_cadences():
        raise TopicError(f"There is no {cadence.value} issue to choose.")
    return cadence


def parse_cadence(value: str | None) -> Cadence:
    """A cadence from user input; None or "" is the default (weekly)."""
    if value is None or value == "":
        return Cadence.WEEKLY
    try:
        return Cadence(str(value).strip().lower())
    except ValueError:
        raise TopicError("Cadence must be 'weekly' or 'daily'.") from None


def set_reader_topics(subscriber: Subscriber, topics: Iterable[Topic]) -> None:
    """Replace the reader's topics; an empty choice means everything. A topic kept keeps
    its row (when it was chosen: a topic's sequence takes in only new choices)."""
    wanted = {topic.id for topic in topics}
    mine = subscriber_topics.c.subscriber_id == subscriber.id
    had = set(db.session.scalars(select(subscriber_topics.c.topic_id).where(mine)))
    if had - wanted:
        db.session.execute(delete(subscriber_topics).where(
            mine, subscriber_topics.c.topic_id.in_(sorted(had - wanted))))
    rows = [{"subscriber_id": subscriber.id, "topic_id": topic_id}
            for topic_id in sorted(wanted - had)]
    if rows:
        db.session.execute(insert(subscriber_topics), rows)
    db.session.expire(subscriber, ["topics"])


def set_cadence(subscriber: Subscriber, cadence: Cadence) -> None:
    subscriber.cadence = cadence


def pause_reader(subscriber: Subscriber, until: datetime | None) -> None:
    """No digest until ``until`` (None: resume now)."""
    if until is not None and until.tzinfo is None:
        raise TopicError("The pause needs a timezone.")
    subscriber.paused_until = until


def pause_readers(subscriber_ids: list[int], until: datetime) -> None:
    """The same pause for many readers at once (the sunset policy's run)."""
    if until.tzinfo is None:
        raise TopicError("The pause needs a timezone.")
    db.session.execute(update(Subscriber).where(Subscriber.id.in_(subscriber_ids))
                       .values(paused_until=until)
                       .execution_options(synchronize_session=False))


def reader_counts() -> dict[int, int]:
    """Active readers who chose each topic, by topic id."""
    return dict(db.session.execute(
        select(subscriber_topics.c.topic_id, func.count())
        .join(Subscriber, Subscriber.id == subscriber_topics.c.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.ACTIVE)
        .group_by(subscriber_topics.c.topic_id)).all())


def reader_topic_slugs(subscriber_ids: list[int]) -> dict[int, list[str]]:
    """Each reader's topic slugs (for exports), in one query."""
    found: dict[int, list[str]] = {}
    for subscriber_id, slug in db.session.execute(
        select(subscriber_topics.c.subscriber_id, Topic.slug)
        .join(Topic, Topic.id == subscriber_topics.c.topic_id)
        .where(subscriber_topics.c.subscriber_id.in_(subscriber_ids))
        .order_by(Topic.position, Topic.id)
    ):
        found.setdefault(subscriber_id, []).append(slug)
    return found


# --- the editors' topic page

def readers_by_cadence() -> dict[Cadence, int]:
    """Active readers per cadence, every cadence listed."""
    counts = dict(db.session.execute(
        select(Subscriber.cadence, func.count())
        .where(Subscriber.status == SubscriberStatus.ACTIVE)
        .group_by(Subscriber.cadence)).all())
    return {cadence: counts.get(cadence, 0) for cadence in Cadence}


def move_topic(topic_id: int, step: int) -> None:
    """Swap a topic with its neighbour (step -1: up, +1: down); the order is renumbered."""
    ordered = list_topics()
    index = next((i for i, topic in enumerate(ordered) if topic.id == topic_id), None)
    if index is None:
        raise TopicError("No such topic.")
    other = index + step
    if step in (-1, 1) and 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, topic in enumerate(ordered, start=1):
        topic.position = position


def delete_topic(topic_id: int) -> None:
    """Remove a topic no reader chose (a reader whose only topic went would suddenly
    get everything); its articles stay, out of it."""
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        raise TopicError("No such topic.")
    chosen_by = reader_counts().get(topic.id, 0)
    if chosen_by:
        raise TopicError(f"{chosen_by} reader(s) chose {topic.name!r}: a topic readers "
                         "chose cannot be deleted (rename it or change its rules instead).")
    db.session.execute(delete(article_topics).where(article_topics.c.topic_id == topic_id))
    db.session.execute(delete(subscriber_topics).where(subscriber_topics.c.topic_id == topic_id))
    db.session.delete(topic)


def unmapped_categories() -> list[str]:
    """Article categories no topic maps yet: what "make topics from categories" offers."""
    mapped = {category for topic in list_topics() for category in topic.categories}
    return sorted(_all_categories() - mapped, key=str.lower)


def manual_topic_ids(article_id: int) -> set[int]:
    """The topics an editor put the article in by hand."""
    return set(db.session.scalars(select(article_topics.c.topic_id).where(
        article_topics.c.article_id == article_id, article_topics.c.manual.is_(True))))
