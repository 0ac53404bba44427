"""Read articles from files: scraped plain text, HTML pages, Markdown with front matter."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from newsletter.content.articles import ArticleInput, InvalidArticle, one_line

# Lines where a scraped page's article ends and the site's own furniture begins.
BOILERPLATE_STARTS = ("related articles", "related posts", "leave a comment", "leave a reply",
                      "copyright ©", "copyright (c)", "subscribe to ", "back to top",
                      "share this", "you may also like", "enter your email address")
COMMENTS_LINE = re.compile(r"^(?P<categories>.*?)\s+(?:No|\d+) Comments? on\s", re.IGNORECASE)


def read_article_file(path: Path, url_prefix: str) -> ArticleInput:
    """Parse one file by its extension; ``url_prefix`` + file stem is the URL when the
    file names none."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidArticle(f"{path.name} is not UTF-8 text") from None
    default_url = url_prefix.rstrip("/") + "/" + path.stem
    if suffix in {".html", ".htm"}:
        return parse_html_page(text, default_url)
    if suffix in {".md", ".markdown"}:
        return parse_markdown(text, default_url)
    if suffix == ".txt":
        return parse_scraped_text(text, default_url)
    raise InvalidArticle(f"{path.name}: expected .txt, .html or .md")


def parse_scraped_text(text: str, url: str) -> ArticleInput:
    """A page as scraped: title line, (the title again), a category line, body, furniture."""
    lines = [one_line(line) for line in text.splitlines()]
    paragraphs = [line for line in lines if line]
    if not paragraphs:
        raise InvalidArticle("the file is empty")
    title, rest = paragraphs[0], paragraphs[1:]
    if rest and rest[0] == title:
        rest = rest[1:]
    categories: list[str] = []
    if rest:
        match = COMMENTS_LINE.match(rest[0])
        if match:
            categories = [c.strip() for c in match["categories"].split(",") if c.strip()]
            rest = rest[1:]
    body = []
    for paragraph in rest:
        if paragraph.lower().startswith(BOILERPLATE_STARTS):
            break
        body.append(paragraph)
    return ArticleInput(
        title=title, url=url, categories=categories,
        body_html="".join(f"<p>{html.escape(p)}</p>" for p in body),
    )


FRONT_MATTER = re.compile(r"\A---\s*\n(?P<meta>.*?)\n---\s*\n(?P<body>.*)\Z", re.DOTALL)


def parse_markdown(text: str, url: str) -> ArticleInput:
    match = FRONT_MATTER.match(text)
    if not match:
        raise InvalidArticle("a Markdown article starts with front matter between '---' lines "
                             "(title: ..., url: ..., date: ...)")
    meta = {}
    for line in match["meta"].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip().lower()] = value.strip().strip("\"'")
    categories = meta.get("categories") or meta.get("tags") or ""
    return ArticleInput(
        title=meta.get("title", ""),
        url=meta.get("url") or url,
        summary=meta.get("summary") or meta.get("description") or "",
        body_markdown=match["body"],
        author=meta.get("author"),
        categories=[c.strip() for c in categories.strip("[]").split(",") if c.strip()],
        published_at=parse_date(meta.get("date")),
    )


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArticle(f"date {value!r} is not an ISO date such as 2026-11-28") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _PageReader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.canonical = ""
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attributes = {key: value or "" for key, value in attrs}
        if tag == "meta":
            key = attributes.get("property") or attributes.get("name")
            if key:
                self.meta.setdefault(key.lower(), attributes.get("content", ""))
        elif tag == "link" and "canonical" in attributes.get("rel", "").split():
            self.canonical = attributes.get("href", "")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def parse_html_page(text: str, url: str) -> ArticleInput:
    reader = _PageReader()
    reader.feed(text)
    meta = reader.meta
    body = re.search(r"<article\b[^>]*>(.*?)</article>", text, re.DOTALL | re.IGNORECASE) or \
        re.search(r"<body\b[^>]*>(.*?)</body>", text, re.DOTALL | re.IGNORECASE)
    section = meta.get("article:section", "")
    return ArticleInput(
        title=meta.get("og:title") or reader.title,
        url=reader.canonical or meta.get("og:url") or url,
        summary=meta.get("og:description") or meta.get("description") or "",
        body_html=body.group(1) if body else "",
        author=meta.get("author") or meta.get("article:author"),
        categories=[c.strip() for c in section.split(",") if c.strip()],
        published_at=parse_date(meta.get("article:published_time")),
    )
