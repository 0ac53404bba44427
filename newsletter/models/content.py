"""Content: articles, topics and their association tables, feed state, site settings."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models.base import UTCDateTime, enum_column, utcnow


class ArticleSource(enum.StrEnum):
    FEED = "feed"
    API = "api"
    IMPORT = "import"
    EDITOR = "editor"


class Article(db.Model):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)  # canonical
    guid: Mapped[str | None] = mapped_column(String(2048), unique=True)  # a feed's id
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised with nh3
    # What an editor typed, when they wrote Markdown: body_html is rendered from it.
    body_markdown: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200))
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[ArticleSource] = mapped_column(enum_column(ArticleSource, "article_source"))
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)  # kept out of digests
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The feed it came from (topics can map a whole feed); NULL for files and the API.
    feed_url: Mapped[str | None] = mapped_column(String(2048))
    # The article's language (one of NEWSLETTER_LANGUAGES): only readers of that language
    # get it. NULL: every reader.
    language: Mapped[str | None] = mapped_column(String(16))

    topics: Mapped[list[Topic]] = relationship(secondary="article_topics", viewonly=True,
                                               order_by="Topic.position, Topic.id")


class Topic(db.Model):
    """A beat readers can choose. Articles land in it by category, by feed, or by hand."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)  # [a-z0-9-]
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)  # order in forms and digests
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)  # article categories
    feeds: Mapped[list[str]] = mapped_column(JSON, default=list)  # feed URLs
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Which topics an article is in. Rows from the topics' rules are recomputed when an
# article arrives or a rule changes; ``manual`` rows (an editor's choice) are kept.
article_topics = Table(
    "article_topics",
    db.metadata,
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
    Column("topic_id", Integer, ForeignKey("topics.id"), primary_key=True, index=True),
    Column("manual", Boolean, nullable=False, default=False, server_default=false()),
)


CHOSEN_LONG_AGO = "2000-01-01 00:00:00"

subscriber_topics = Table(
    "subscriber_topics",
    db.metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id"), primary_key=True),
    Column("topic_id", Integer, ForeignKey("topics.id"), primary_key=True, index=True),
    # When the reader chose it: a topic's sequence takes in readers who choose it after
    # the sequence was made. Choices from before this column count as long ago.
    Column("chosen_at", UTCDateTime, nullable=False, default=utcnow,
           server_default=CHOSEN_LONG_AGO),
)


class FeedState(db.Model):
    """What a feed said last time, for conditional GET (ETag / Last-Modified)."""

    __tablename__ = "feed_states"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(512))
    modified: Mapped[str | None] = mapped_column(String(128))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class SiteSetting(db.Model):
    """One setting owners edit in the workspace (branding, mail texts): see
    services/site_settings.py for the keys and how each value is checked."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SiteFile(db.Model):
    """A file owners upload for the site (the logo): checked when stored, served by
    the app with its hash as ETag. See content/site_logo.py."""

    __tablename__ = "site_files"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
