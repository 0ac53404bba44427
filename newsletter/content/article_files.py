"""Read articles from files: scraped plain text, HTML pages, Markdown with front matter."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import yaml

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


FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<meta>.*?)\n?^---[ \t]*(?:\n(?P<body>.*))?\Z",
                          re.DOTALL | re.MULTILINE)
# Front matter is a few lines of metadata; anything bigger is not what a writer meant.
MAX_FRONT_MATTER = 16 * 1024


def parse_markdown(text: str, url: str) -> ArticleInput:
    match = FRONT_MATTER.match(text)
    if not match:
        raise InvalidArticle("a Markdown article starts with front matter between '---' lines "
                             "(title: ..., url: ..., date: ...)")
    meta = read_front_matter(match["meta"])
    categories = meta.get("categories", meta.get("tags"))
    return ArticleInput(
        title=_text(meta, "title"),
        url=_text(meta, "url") or url,
        summary=_text(meta, "summary") or _text(meta, "description"),
        body_markdown=match["body"] or "",
        author=_text(meta, "author") or None,
        categories=_names(categories),
        published_at=parse_date(meta.get("date")),
    )


def read_front_matter(source: str) -> dict:
    """The front matter's keys (lower case) and values, read by YAML's safe loader: no
    Python objects, and no anchors or aliases, whose expansion can make a few bytes
    into gigabytes. Raises InvalidArticle naming the line of a YAML error."""
    if len(source.encode()) > MAX_FRONT_MATTER:
        raise InvalidArticle(f"the front matter is over {MAX_FRONT_MATTER // 1024} KB")
    try:
        _refuse_tricks(source)
        meta = yaml.safe_load(source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 2}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "is not valid YAML"
        if "mapping values are not allowed" in problem:  # title: Talks: day two
            problem += " (put a value that holds ': ' in quotes)"
        raise InvalidArticle(f"front matter{where}: {problem}") from None
    except ValueError as error:  # a date YAML recognises but the calendar has not: 2026-13-45
        raise InvalidArticle(f"front matter: {error}") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InvalidArticle("the front matter must be 'key: value' lines")
    return {str(key).strip().lower(): value for key, value in meta.items()}


MAX_FRONT_MATTER_NESTING = 10
_OPENS = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
          yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _refuse_tricks(source: str) -> None:
    """Anchors and aliases, and nesting deep enough to exhaust the loader's recursion."""
    depth = 0
    for token in yaml.scan(source, Loader=yaml.SafeLoader):
        line = token.start_mark.line + 2  # +1: counted from 0, +1: the '---' line
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
            raise InvalidArticle(f"front matter line {line}: YAML anchors and aliases "
                                 f"(& and *) are not accepted")
        depth += isinstance(token, _OPENS) - isinstance(token, _CLOSES)
        if depth > MAX_FRONT_MATTER_NESTING:
            raise InvalidArticle(f"front matter line {line}: nested more than "
                                 f"{MAX_FRONT_MATTER_NESTING} deep")


def _text(meta: dict, key: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise InvalidArticle(f"front matter {key!r} must be a single value, not a list")
    return str(value).strip()


def _names(value) -> list[str]:
    """Categories as a YAML list, or one string with commas (``News, Europe``)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or any(isinstance(item, (dict, list)) for item in value):
        raise InvalidArticle("front matter 'categories' (or 'tags') must be a list of names")
    return [str(item).strip() for item in value if item is not None and str(item).strip()]


def parse_date(value: object) -> datetime | None:
    """An ISO date or time; YAML has already made an unquoted one a date or datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArticle(
                f"date {str(value)[:80]!r} is not an ISO date such as 2026-11-28") from None
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
