"""The public archive of sent issues."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.mail.links import external_url
from newsletter.models import Article, Digest, DigestStatus, Topic, article_topics, digest_articles
from newsletter.services import digests


def sent_digests(limit: int = 200) -> list[Digest]:
    return list(db.session.scalars(
        select(Digest).where(Digest.status == DigestStatus.SENT)
        .order_by(Digest.started_at.desc()).limit(limit)))


def topic_issues(topic: Topic, limit: int = 50) -> list[tuple[Digest, list[Article]]]:
    """Sent issues that carried articles of the topic, newest first, each with those
    articles (for the topic's archive page and its Atom feed)."""
    carried = (select(Digest, Article)
               .join(digest_articles, digest_articles.c.digest_id == Digest.id)
               .join(Article, Article.id == digest_articles.c.article_id)
               .join(article_topics, article_topics.c.article_id == Article.id)
               .where(article_topics.c.topic_id == topic.id,
                      Digest.status == DigestStatus.SENT))
    recent = (carried.with_only_columns(Digest.id).distinct()
              .order_by(Digest.id.desc()).limit(limit))
    issues: dict[int, tuple[Digest, list[Article]]] = {}
    for digest, article in db.session.execute(
            carried.where(Digest.id.in_(recent.scalar_subquery()))
            .order_by(Digest.started_at.desc(), Digest.id.desc(), Article.published_at)):
        issues.setdefault(digest.id, (digest, []))[1].append(article)
    return list(issues.values())


def public_digest(digest_id: int) -> Digest | None:
    digest = db.session.get(Digest, digest_id)
    # Issues still sending are public too: the "view in browser" link must work at once.
    if digest is None or digest.status not in (DigestStatus.SENT, DigestStatus.SENDING):
        return None
    return digest


def web_view_html(digest: Digest) -> str:
    """The issue as readers got it, minus anything personal."""
    return digests.render(digest, external_url("public.subscribe"), web_view=True).html


def imported_article(slug: str) -> Article | None:
    """An article imported from a file that named no URL of its own (see
    ``articles import``): its URL is BASE_URL/articles/<file name>."""
    url = f"{current_app.config['BASE_URL']}/articles/{slug}"
    return db.session.scalar(select(Article).where(Article.url == url))
