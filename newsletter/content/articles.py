"""Articles: the one door every source (feeds, API, file import, editors) goes through.

Nothing here commits: the view, command or task that stores an article commits it."""

from __future__ import annotations

import html
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime

import markdown
import nh3
from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.content import topics
from newsletter.extensions import db
from newsletter.mail.headers import clean_text, neutralise
from newsletter.models import Article, ArticleSource, utcnow

log = logging.getLogger(__name__)

MAX_TITLE = 500
MAX_URL = 2048
MAX_SUMMARY = 2000  # what may be typed; the stored summary is cut to SUMMARY_LENGTH
MAX_BODY_BYTES = 200 * 1024  # UTF-8 bytes of the body as given (HTML or Markdown)
SUMMARY_LENGTH = 300
# What a digest or archive page may show; everything else (script, style, on*
# handlers, javascript: links) is removed by nh3.
ALLOWED_TAGS = {"p", "br", "a", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote",
                "h2", "h3", "h4", "figure", "figcaption", "img", "code", "pre"}


class InvalidArticle(ValueError):
    """An article that cannot be stored; ``problems`` says every reason at once."""

    def __init__(self, *problems: str):
        super().__init__(" ".join(problems))
        self.problems = list(problems)


@dataclass
class ArticleInput:
    title: str
    url: str
    summary: str = ""
    body_html: str = ""
    body_markdown: str | None = None  # when given, body_html is rendered from it
    author: str | None = None
    categories: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    guid: str | None = None
    language: str | None = None  # one of NEWSLETTER_LANGUAGES; None: for every reader


def one_line(text: object) -> str:
    """One line: control characters and line separators become spaces, whitespace collapses."""
    return clean_text(text)


def sanitize_html(markup: str) -> str:
    return nh3.clean(markup or "", tags=ALLOWED_TAGS, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer")


# Containers the HTML parser re-scans on every nested opening: 10,000 nested lists (80 KB)
# take nh3 seconds, so a body nested deeper than any article is refused before it.
MAX_NESTING = 100
_CONTAINER_TAG = re.compile(r"<(/?)(?:ul|ol|dl|blockquote|div|section|article|aside|figure|"
                            r"header|footer|main|nav|details|fieldset|form|table)\b",
                            re.IGNORECASE)


def nesting_depth(markup: str) -> int:
    depth = deepest = 0
    for closing in _CONTAINER_TAG.findall(markup):
        depth = max(depth - 1, 0) if closing else depth + 1
        deepest = max(deepest, depth)
    return deepest


# Markdown nests with markers ("- - - x", "1. 1. x", "> > x") or indentation; the
# renderer recurses once per level and fails (RecursionError) in the thousands.
_MARKDOWN_MARKERS = re.compile(r"(?:(?:[-*+]|\d{1,9}[.)]|>)[ \t]*)+")
MARKDOWN_INDENT = 4  # spaces per nested level


def markdown_depth(source: str) -> int:
    deepest = 0
    for line in source.splitlines():
        stripped = line.lstrip(" \t")
        indent = len(line[:len(line) - len(stripped)].expandtabs(MARKDOWN_INDENT))
        markers = _MARKDOWN_MARKERS.match(stripped)
        levels = len(re.findall(r"[-*+>]|\d{1,9}[.)]", markers.group(0))) if markers else 0
        deepest = max(deepest, indent // MARKDOWN_INDENT + levels)
    return deepest


# The renderer looks for the "]" of every "[" (a link or image) one character at a time,
# to the end of the paragraph when there is none: 200 KB of "[" took it an hour.
# ``bracket_scan`` counts those steps in one pass; no real article comes near the cap.
MAX_BRACKET_SCAN = 1_000_000
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_BRACKET = re.compile(r"\\.|[\[\]]")  # an escaped character is no bracket


def bracket_scan(source: str) -> int:
    """Characters the renderer walks looking for closing brackets: for each "[", the
    distance to its "]", or to the end of its paragraph when it has none."""
    steps = 0
    for paragraph in _PARAGRAPH_BREAK.split(source):
        if "[" not in paragraph:
            continue
        opened: list[int] = []
        for match in _BRACKET.finditer(paragraph):
            if match.group() == "[":
                opened.append(match.start())
            elif opened:
                steps += match.start() - opened.pop()
        steps += sum(len(paragraph) - start for start in opened)
    return steps


# Each inline match (emphasis, code, a link, a tag, an entity, a line break) rebuilds
# the rest of its paragraph, so one paragraph of 200 KB of "*a" took 27 s. Markup
# characters times paragraph length bounds that: a cap of well under a second.
MAX_INLINE_WORK = 250_000_000
_INLINE_MARKUP = re.compile(r"[*_`<&\[\]!\\]| {2,}\n")  # the last: a line break


def inline_work(source: str) -> int:
    """For each paragraph, its markup characters times its length."""
    return sum(len(_INLINE_MARKUP.findall(paragraph)) * len(paragraph)
               for paragraph in _PARAGRAPH_BREAK.split(source))


def render_markdown(source: str) -> str:
    """Markdown to the same sanitised HTML as every other body: raw HTML inside the
    Markdown passes through the Markdown renderer, then nh3 removes what is unsafe.
    InvalidArticle when it nests deeper than MAX_NESTING."""
    # Raw HTML in it nests as deep in the rendering: refused here, before the work.
    depth = max(markdown_depth(source or ""), nesting_depth(source or ""))
    if depth > MAX_NESTING:
        raise InvalidArticle(f"The Markdown nests lists or quotes {depth} deep; at most "
                             f"{MAX_NESTING} are allowed.")
    if bracket_scan(source or "") > MAX_BRACKET_SCAN:
        raise InvalidArticle("The Markdown has too many [ brackets that close far away or "
                             "never: close them, or write \\[ for a bracket meant as text.")
    if inline_work(source or "") > MAX_INLINE_WORK:
        raise InvalidArticle("A paragraph of the Markdown holds too much markup for its "
                             "length: split it with blank lines.")
    try:
        rendered = markdown.markdown(source or "")
    except RecursionError:  # nesting the count above missed: refuse, never a 500
        raise InvalidArticle("The Markdown nests too deep to render.") from None
    return _sanitize_body(rendered)


def render_body(source: str, is_markdown: bool) -> str:
    """The stored body; InvalidArticle when it nests deeper than MAX_NESTING."""
    return render_markdown(source) if is_markdown else _sanitize_body(source)


def _sanitize_body(markup: str) -> str:
    depth = nesting_depth(markup or "")
    if depth > MAX_NESTING:
        raise InvalidArticle(f"The body nests lists, quotes or blocks {depth} deep; at most "
                             f"{MAX_NESTING} are allowed.")
    return sanitize_html(markup)


def body_too_big(source: str) -> str | None:
    size = len((source or "").encode())
    if size > MAX_BODY_BYTES:
        return (f"The body is {math.ceil(size / 1024)} KB; at most "
                f"{MAX_BODY_BYTES // 1024} KB is allowed.")
    return None


_BLOCK_BOUNDARY = re.compile(r"<(/?)(p|br|div|li|h[1-6]|blockquote|tr)\b", re.IGNORECASE)


def html_to_text(markup: str) -> str:
    # A space at block boundaries, so "</p><p>" does not glue two sentences together.
    spaced = _BLOCK_BOUNDARY.sub(r" <\1\2", markup or "")
    # Plain text out: entities decoded here, escaped again by the templates that show it.
    return one_line(html.unescape(nh3.clean(spaced, tags=set())))


def summary_from_body(body_html: str) -> str:
    """The summary stored for an article whose writer gave none."""
    return _shorten(html_to_text(body_html))


def _summary(data: ArticleInput, body_html: str) -> str:
    return _shorten(html_to_text(data.summary)) or summary_from_body(body_html)


def _shorten(text: str) -> str:
    if len(text) <= SUMMARY_LENGTH:
        return text
    return text[:SUMMARY_LENGTH].rsplit(" ", 1)[0] + "…"


def validate(data: ArticleInput, *, cut_to_fit: bool = False) -> ArticleInput:
    """The stored form of an article, or InvalidArticle naming every problem. A person
    (the workspace, the API) is told a title or summary is too long; a machine source
    (feeds, files: nobody to ask) has them cut to fit instead."""
    # Titles become digest Subjects: CR, LF, NUL, U+2028/2029, other controls and "=?"
    # are neutralised here, and the header writer does it again (newsletter.mail.headers).
    title = neutralise(data.title)
    problems = []
    if not title:
        problems.append("An article needs a title.")
    elif len(title) > MAX_TITLE and not cut_to_fit:
        problems.append(f"The title has {len(title)} characters; at most {MAX_TITLE} "
                        f"are allowed.")
    url = one_line(data.url)
    if not url.startswith(("http://", "https://")) or len(url) > MAX_URL:
        problems.append(f"An article needs an http(s) URL of at most {MAX_URL} "
                        f"characters, got {url[:80]!r}.")
    if len(data.summary or "") > MAX_SUMMARY and not cut_to_fit:
        problems.append(f"The summary has {len(data.summary)} characters; at most "
                        f"{MAX_SUMMARY} are allowed.")
    # As typed, with the line ends a textarea sends (CRLF) made plain.
    markdown_source = None if data.body_markdown is None else data.body_markdown.replace(
        "\r\n", "\n")
    too_big = body_too_big(data.body_html if markdown_source is None else markdown_source)
    if too_big:
        problems.append(too_big)
    published = data.published_at
    if published is not None and published.tzinfo is None:
        problems.append("The publication time needs a timezone.")
    if data.language is not None and data.language not in current_app.config["LANGUAGES"]:
        problems.append(f"Unknown language {str(data.language)[:16]!r}: use one of "
                        f"{', '.join(current_app.config['LANGUAGES'])}.")
    if problems:
        raise InvalidArticle(*problems)
    body_html = (render_body(data.body_html, False) if markdown_source is None
                 else render_body(markdown_source, True))
    return ArticleInput(
        title=title[:MAX_TITLE],
        url=url,
        summary=_summary(data, body_html),
        body_html=body_html,
        body_markdown=markdown_source,
        author=one_line(data.author)[:200] or None,
        categories=[one_line(c)[:100] for c in data.categories if one_line(c)][:20],
        published_at=published,
        guid=one_line(data.guid)[:MAX_URL] or None,
        language=data.language,
    )


MACHINE_SOURCES = {ArticleSource.FEED, ArticleSource.IMPORT}


def find_existing(url: str, guid: str | None) -> Article | None:
    condition = Article.url == url if guid is None else or_(Article.url == url,
                                                           Article.guid == guid)
    return db.session.scalar(select(Article).where(condition))


def add_article(data: ArticleInput, source: ArticleSource,
                feed_url: str | None = None) -> tuple[Article, bool]:
    """Store an article unless its URL or GUID is known; returns (article, created).
    ``feed_url``: the feed it came from, for topics that map a whole feed."""
    clean = validate(data, cut_to_fit=source in MACHINE_SOURCES)
    existing = find_existing(clean.url, clean.guid)
    if existing is not None:
        return existing, False
    if clean.published_at is None:
        log.info("article %s has no date; using the time it arrived", clean.url)
    article_id = _insert_unless_known(dict(
        url=clean.url, guid=clean.guid, title=clean.title, summary=clean.summary,
        body_html=clean.body_html, body_markdown=clean.body_markdown, author=clean.author,
        categories=clean.categories,
        published_at=clean.published_at or utcnow(), source=source, feed_url=feed_url,
        language=clean.language,
    ))
    if article_id is None:  # the same article arrived through another door just now
        existing = find_existing(clean.url, clean.guid)
        if existing is None:
            raise RuntimeError(f"article {clean.url} clashed with one that is gone")
        return existing, False
    article = db.session.get(Article, article_id)
    topics.file_article(article)
    return article, True


def _insert_unless_known(values: dict) -> int | None:
    """The new article's id, or None when its URL or GUID is taken. ON CONFLICT DO
    NOTHING instead of catching the IntegrityError: that would need a rollback of the
    caller's transaction, or a savepoint, which pysqlite turns into a commit when it
    opens the transaction."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return db.session.scalar(insert(Article).values(**values).on_conflict_do_nothing()
                             .returning(Article.id))


def set_excluded(article_id: int, excluded: bool) -> Article | None:
    """Keep an article out of (or put it back into) the next digest."""
    article = db.session.get(Article, article_id)
    if article is not None:
        article.excluded = excluded
    return article


def update_article(article_id: int, data: ArticleInput) -> Article:
    """An editor's correction; the URL stays unique."""
    article = db.session.get(Article, article_id)
    if article is None:
        raise InvalidArticle("No such article.")
    clean = validate(data)
    clash = db.session.scalar(select(Article.id).where(Article.url == clean.url,
                                                       Article.id != article_id))
    if clash is not None:
        raise InvalidArticle("Another article has this URL already.")
    article.title, article.url, article.summary = clean.title, clean.url, clean.summary
    article.body_html, article.body_markdown = clean.body_html, clean.body_markdown
    article.categories = clean.categories
    article.author = clean.author
    if clean.published_at is not None:
        article.published_at = clean.published_at
    topics.file_article(article)  # its categories may have changed
    return article
