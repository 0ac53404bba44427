"""The public archive of sent issues."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.mail.links import external_url
from newsletter.models import Article, Digest, DigestStatus
from newsletter.services import digests


def sent_digests(limit: int = 200) -> list[Digest]:
    return list(db.session.scalars(
        select(Digest).where(Digest.status == DigestStatus.SENT)
        .order_by(Digest.started_at.desc()).limit(limit)))


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
