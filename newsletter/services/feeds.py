"""Poll RSS/Atom feeds with conditional GET and add their new entries as articles."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser
from flask import current_app

from newsletter.extensions import db
from newsletter.models import ArticleSource, FeedState, utcnow
from newsletter.services.articles import ArticleInput, InvalidArticle, add_article

log = logging.getLogger(__name__)
FETCH_TIMEOUT = 20
MAX_FEED_BYTES = 10 * 1024 * 1024


@dataclass
class PollResult:
    url: str
    added: int = 0
    skipped: int = 0  # known or invalid entries
    not_modified: bool = False
    error: str | None = None


def poll_all() -> list[PollResult]:
    return [poll_feed(url) for url in current_app.config["FEEDS"]]


def poll_feed(url: str) -> PollResult:
    state = db.session.get(FeedState, url) or FeedState(url=url)
    result = PollResult(url=url)
    request = urllib.request.Request(url, headers={"User-Agent": "newsletter-feed-poller/1"})
    if state.etag:
        request.add_header("If-None-Match", state.etag)
    if state.modified:
        request.add_header("If-Modified-Since", state.modified)
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
            payload = response.read(MAX_FEED_BYTES)
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    except urllib.error.HTTPError as error:
        if error.code == 304:
            result.not_modified = True
        else:
            result.error = f"HTTP {error.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        result.error = f"fetch failed: {getattr(error, 'reason', error)}"
    else:
        parsed = feedparser.parse(payload)
        if parsed.bozo and not parsed.entries:
            result.error = f"not a feed: {parsed.get('bozo_exception')}"
        else:
            for entry in parsed.entries:
                _add_entry(entry, result)
            state.etag, state.modified = etag, modified
    if result.error:
        log.warning("feed %s: %s", url, result.error)
    state.checked_at, state.last_error = utcnow(), result.error
    db.session.merge(state)
    db.session.commit()
    return result


def _add_entry(entry, result: PollResult) -> None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    content = entry.get("content") or []
    data = ArticleInput(
        title=entry.get("title", ""),
        url=entry.get("link", ""),
        guid=entry.get("id"),
        summary=entry.get("summary", ""),
        body_html=content[0].get("value", "") if content else "",
        author=entry.get("author"),
        categories=[tag.get("term", "") for tag in entry.get("tags", [])],
        published_at=datetime.fromtimestamp(timegm(stamp), UTC) if stamp else None,
    )
    try:
        _, created = add_article(data, ArticleSource.FEED)
    except InvalidArticle as error:
        log.warning("feed entry %r skipped: %s", data.url or data.title, error)
        result.skipped += 1
        return
    if created:
        result.added += 1
    else:
        result.skipped += 1
