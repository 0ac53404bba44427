"""What a digest shows of an article's body: its start with the structure kept
(headings, paragraphs, lists, links, quotes, images), as mail HTML and as plain text,
cut at a block boundary."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from newsletter.content.articles import (
    MAX_NESTING,
    nesting_depth,
    sanitize_html,
    summary_from_body,
)

EXCERPT_LENGTH = 800  # visible characters after which the excerpt ends with its block
HARD_LIMIT = 2 * EXCERPT_LENGTH  # one huge block is cut at a word instead
MAX_DEPTH = 6  # elements nested deeper (10,000 nested lists) are left out, with their text
MAX_IMAGE_WIDTH = 600  # the mail's column
BLOCKS = {"p", "h2", "h3", "h4", "ul", "ol", "li", "blockquote", "figure", "figcaption", "pre"}
INLINE = {"a", "strong", "em", "b", "i", "code"}
HEADINGS = {"h2", "h3", "h4"}
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Excerpt:
    html: str
    text: str


def digest_body(summary: str, body_html: str) -> Excerpt:
    """A summary the writer gave wins; else the start of the body, structure kept."""
    if summary and summary != summary_from_body(body_html):
        return Excerpt(html=f"<p>{html.escape(summary)}</p>", text=summary)
    if not body_html:
        return Excerpt(html="", text="")
    if nesting_depth(body_html) > MAX_NESTING:  # stored before such bodies were refused
        return Excerpt(html=f"<p>{html.escape(summary)}</p>", text=summary)
    return excerpt(body_html)


def excerpt(body_html: str, limit: int = EXCERPT_LENGTH) -> Excerpt:
    reader = _ExcerptReader(limit)
    reader.feed(sanitize_html(body_html))
    reader.close()
    return reader.result()


def _image(attributes: dict[str, str]) -> tuple[str, str] | None:
    """An image as mail HTML and text, or None for what a reader should not load:
    anything but https, and 1x1 tracking pixels."""
    src = attributes.get("src", "")
    if not src.startswith("https://"):
        return None
    sizes = [attributes.get(name, "").strip() for name in ("width", "height")]
    if any(size.isdigit() and int(size) <= 1 for size in sizes):
        return None
    alt = " ".join(attributes.get("alt", "").split())
    width = sizes[0]
    width_attr = (f' width="{min(int(width), MAX_IMAGE_WIDTH)}"'
                  if width.isdigit() and int(width) > 0 else "")
    markup = (f'<img src="{html.escape(src)}" alt="{html.escape(alt)}"{width_attr} '
              f'style="display:block;max-width:100%;height:auto;border:0">')
    return markup, f"[Image: {alt}]" if alt else ""


class _ExcerptReader(HTMLParser):
    def __init__(self, limit: int):
        super().__init__(convert_charrefs=True)
        self.limit = limit
        self.out: list[str] = []  # mail HTML
        self.open: list[str] = []  # elements written and not yet closed
        self.skipping = 0  # depth inside an element left out
        self.seen = 0  # visible characters so far
        self.done = False
        self.truncated = False
        # Plain text: finished blocks, the line being written, list markers.
        self.blocks: list[tuple[str, bool]] = []  # (text, is a list item)
        self.line: list[str] = []
        self.lists: list[list] = []  # [tag, next number]
        self.marker = ""
        self.quotes = 0
        self.links: list[tuple[str, int]] = []  # href, where its text starts

    # The HTML side.
    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        if self.skipping or len(self.open) >= MAX_DEPTH:
            self.skipping += tag not in {"br", "img"}
            return
        attributes = {key: value or "" for key, value in attrs}
        if tag == "br":
            self.out.append("<br>")
            self.line.append("\n")
        elif tag == "img":
            image = _image(attributes)
            if image:
                self.out.append(image[0])
                if image[1]:
                    self._flush()
                    self.line.append(image[1])
                    self._flush()
        elif tag in BLOCKS or tag in INLINE:
            self._text_start(tag, attributes)
            href = attributes.get("href", "") if tag == "a" else ""
            self.out.append(f'<a href="{html.escape(href)}">' if href else f"<{tag}>")
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self.done or tag in {"br", "img"}:
            return
        if self.skipping:
            self.skipping -= 1
            return
        if tag not in self.open:
            return
        while self.open:
            current = self.open.pop()
            self.out.append(f"</{current}>")
            self._text_end(current)
            if current == tag:
                break
        if not self.open and tag in BLOCKS and self.seen >= self.limit:
            self.done = self.truncated = True

    def handle_data(self, data):
        if self.done or self.skipping:
            return
        if "pre" not in self.open:
            data = _SPACES.sub(" ", data)
        if self.seen + len(data) > HARD_LIMIT:
            data = data[:HARD_LIMIT - self.seen].rsplit(" ", 1)[0] + "…"
            self.done = self.truncated = True
        self.seen += len(data.strip())
        self.out.append(html.escape(data, quote=False))
        self.line.append(data)

    def result(self) -> Excerpt:
        while self.open:
            current = self.open.pop()
            self.out.append(f"</{current}>")
            self._text_end(current)
        self._flush()
        text = ""
        previous_item = False
        for block, item in self.blocks:
            text += ("\n" if item and previous_item else "\n\n") if text else ""
            text += block
            previous_item = item
        return Excerpt(html="".join(self.out), text=text)

    # The plain-text side.
    def _text_start(self, tag, attributes):
        if tag == "a":
            self.links.append((attributes.get("href", ""), len("".join(self.line))))
        elif tag in {"ul", "ol"}:
            self._flush()
            self.lists.append([tag, 1])
        elif tag == "li":
            self._flush()
            indent = "  " * max(len(self.lists) - 1, 0)
            kind = self.lists[-1] if self.lists else ["ul", 1]
            self.marker = indent + ("- " if kind[0] == "ul" else f"{kind[1]}. ")
            kind[1] += 1
        elif tag == "blockquote":
            self._flush()
            self.quotes += 1
        elif tag in BLOCKS:
            self._flush()

    def _text_end(self, tag):
        if tag == "a":
            href, start = self.links.pop() if self.links else ("", 0)
            shown = "".join(self.line)[start:]
            if href and href not in shown and href.removeprefix("mailto:") not in shown:
                self.line.append(f" ({href})")
        elif tag in {"ul", "ol"}:
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "li":
            self._flush()
            self.marker = ""
        elif tag == "blockquote":
            self._flush()
            self.quotes = max(self.quotes - 1, 0)
        elif tag in BLOCKS:
            self._flush()

    def _flush(self):
        raw = "".join(self.line)
        self.line = []
        lines = [" ".join(part.split()) for part in raw.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            return
        quote = "> " * self.quotes
        if self.marker:
            continuation = " " * len(self.marker)
            lines = [self.marker + lines[0]] + [continuation + line for line in lines[1:]]
            self.marker = " " * len(self.marker)  # a second block in the same item
        self.blocks.append(("\n".join(quote + line for line in lines), bool(self.lists)))
