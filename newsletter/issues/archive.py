"""The public archive of sent issues."""

from __future__ import annotations

import nh3
from flask import current_app
from sqlalchemy import Select, and_, or_, select

from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.mail.links import external_url
from newsletter.models import (
    Article,
    Digest,
    DigestKind,
    DigestStatus,
    DigestVariant,
    Topic,
    article_topics,
    digest_articles,
)

# Issues that have reached readers: a "view in browser" link must work from the
# first mail on, and a paused send has gone to some readers already. Drafts,
# scheduled and cancelled issues are never public.
PUBLIC_STATUSES = (DigestStatus.SENDING, DigestStatus.PAUSED, DigestStatus.SENT)


def _public() -> Select:
    # An issue marked for its segment only is not listed (its readers' "view in the
    # browser" link still opens it, like any unlisted page).
    return select(Digest).where(Digest.status.in_(PUBLIC_STATUSES),
                                Digest.started_at.is_not(None),
                                Digest.kind == DigestKind.ISSUE,  # steps are personal
                                Digest.segment_only.is_(False))


def public_digests(limit: int = 200) -> list[Digest]:
    """The archive index: newest first."""
    return list(db.session.scalars(
        _public().order_by(Digest.started_at.desc(), Digest.id.desc()).limit(limit)))


def latest_issue() -> Digest | None:
    return db.session.scalars(
        _public().order_by(Digest.started_at.desc(), Digest.id.desc()).limit(1)).first()


def topic_issues(topic: Topic, limit: int = 50) -> list[tuple[Digest, list[Article]]]:
    """Sent issues that carried articles of the topic, newest first, each with those
    articles (for the topic's archive page and its Atom feed)."""
    carried = (select(Digest, Article)
               .join(digest_articles, digest_articles.c.digest_id == Digest.id)
               .join(Article, Article.id == digest_articles.c.article_id)
               .join(article_topics, article_topics.c.article_id == Article.id)
               .where(article_topics.c.topic_id == topic.id,
                      Digest.status == DigestStatus.SENT, Digest.segment_only.is_(False)))
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
    if digest is None or not is_public(digest):
        return None
    return digest


def is_public(digest: Digest) -> bool:
    return (digest.status in PUBLIC_STATUSES and digest.started_at is not None
            and digest.kind == DigestKind.ISSUE)


def neighbours(digest: Digest) -> tuple[Digest | None, Digest | None]:
    """The public issues just before and just after this one (by start, then id)."""
    earlier = or_(Digest.started_at < digest.started_at,
                  and_(Digest.started_at == digest.started_at, Digest.id < digest.id))
    later = or_(Digest.started_at > digest.started_at,
                and_(Digest.started_at == digest.started_at, Digest.id > digest.id))
    previous = db.session.scalars(_public().where(earlier).order_by(
        Digest.started_at.desc(), Digest.id.desc()).limit(1)).first()
    following = db.session.scalars(_public().where(later).order_by(
        Digest.started_at, Digest.id).limit(1)).first()
    return previous, following


def web_view_html(digest: Digest, language: str | None = None) -> str:
    """The issue as readers got it, minus anything personal, in ``language`` (its
    chrome, and its intro when the editor wrote one for it)."""
    return digests.render(digest, external_url("public.subscribe"), web_view=True,
                          language=language).html


def web_copy_html(digest_id: int, variant_id: int) -> str | None:
    """One copy of an issue as its readers got it, minus anything personal (the
    "view in your browser" page); None unless the copy is of that issue and the issue
    has gone out."""
    variant = db.session.get(DigestVariant, variant_id)
    if variant is None or variant.digest_id != digest_id:
        return None
    digest = public_digest(digest_id)
    if digest is None:
        return None
    return digests.render(digest, external_url("public.subscribe"), web_view=True,
                          variant=variant).html


# The mail's HTML inline in the archive page: its structure, links and images, never
# its layout (no style, width or height: the page's CSS lays it out at any width).
INLINE_TAGS = {"div", "span", "table", "thead", "tbody", "tr", "td", "th", "center", "p",
               "br", "hr", "a", "strong", "em", "b", "i", "u", "small", "ul", "ol", "li",
               "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption",
               "img", "code", "pre"}
INLINE_ATTRIBUTES = {"*": {"class", "hidden", "aria-hidden", "lang", "dir"},
                     "a": {"href", "title"}, "img": {"src", "alt", "title"},
                     "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}


def web_view_inline(digest: Digest) -> str:
    """The issue's body for the archive page: the mail sanitised by nh3 down to
    structure (no script, style, head or personal links: it is the web view)."""
    html = web_view_html(digest)
    return nh3.clean(html, tags=INLINE_TAGS, attributes=INLINE_ATTRIBUTES,
                     clean_content_tags={"script", "style", "title", "head"},
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


def imported_article(slug: str) -> Article | None:
    """An article imported from a file that named no URL of its own (see
    ``articles import``): its URL is BASE_URL/articles/<file name>."""
    url = f"{current_app.config['BASE_URL']}/articles/{slug}"
    return db.session.scalar(select(Article).where(Article.url == url))
