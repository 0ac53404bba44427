"""Atom 1.0 feeds (RFC 4287) of archived issues.

One function for every feed of issues (the whole archive now; per-topic feeds
can pass their own issues, title and URLs). ElementTree escapes text and
attributes; characters XML cannot carry at all are dropped first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from datetime import UTC, datetime

from newsletter.content import site_settings
from newsletter.mail.links import external_url
from newsletter.models import Digest, utcnow

ATOM_NS = "http://www.w3.org/2005/Atom"
# XML 1.0's Char production: no C0 controls but tab/LF/CR, no surrogates, no FFFE/FFFF.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return NOT_XML.sub("", value)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ElementTree.Element, tag: str, text: str | None = None,
         **attributes: str) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = _text(text)
    return element


def _updated(digest: Digest) -> datetime:
    return digest.finished_at or digest.started_at


def issues_feed(issues: Iterable[Digest], *, title: str, self_url: str,
                alternate_url: str, subtitle: str = "") -> bytes:
    """An Atom document of ``issues`` (newest first), each linking to its archive page.

    ``self_url`` is where this feed lives, ``alternate_url`` the web page it mirrors;
    both also identify the feed and must be absolute.
    """
    issues = list(issues)
    feed = ElementTree.Element("feed", {"xmlns": ATOM_NS})
    _add(feed, "id", self_url)
    _add(feed, "title", title)
    if subtitle:
        _add(feed, "subtitle", subtitle)
    _add(feed, "updated", _timestamp(max((_updated(d) for d in issues), default=utcnow())))
    _add(_add(feed, "author"), "name", site_settings.current().site_name)
    _add(feed, "link", rel="self", type="application/atom+xml", href=_text(self_url))
    _add(feed, "link", rel="alternate", type="text/html", href=_text(alternate_url))
    for digest in issues:
        page = external_url("public.archive_issue", digest_id=digest.id)
        entry = _add(feed, "entry")
        _add(entry, "id", page)
        _add(entry, "title", digest.subject)
        _add(entry, "published", _timestamp(digest.started_at))
        _add(entry, "updated", _timestamp(_updated(digest)))
        _add(entry, "link", rel="alternate", type="text/html", href=page)
        _add(entry, "summary", "\n".join(article.title for article in digest.articles))
    return ElementTree.tostring(feed, encoding="utf-8", xml_declaration=True)
