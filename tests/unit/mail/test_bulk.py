"""A digest message per reader: the body encoded from its layout is the body encoded
whole, and nothing in a built message needs dot-stuffing."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
import time_machine

from newsletter.mail import bulk
from newsletter.mail.bulk import Base64Body, BulkMessageFactory
from newsletter.mail.render import RenderedMail

COPY = b"COPY-0123456789abcdef"


def whole(raw: bytes) -> bytes:
    return base64.encodebytes(raw).replace(b"\n", b"\r\n")


def random_parts(rnd: random.Random) -> list[bytes]:
    """A body cut at the unsubscribe marker, copy markers anywhere, also side by side,
    at the very start or end, and none at all."""
    def piece() -> bytes:
        return bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 2, 56, 57, 58, 300])))

    return [COPY.join(piece() for _ in range(rnd.randint(1, 6)))
            for _ in range(rnd.randint(1, 3))]


@pytest.mark.parametrize("seed", range(40))
def test_a_body_from_its_layout_is_the_whole_body_encoded(seed):
    rnd = random.Random(seed)
    parts = random_parts(rnd)
    body = Base64Body(parts, COPY)
    # Several readers: the first makes the layout, the others reuse it; then URLs and
    # tokens of other lengths (each its own layout), more of them than are remembered.
    for url_length, token_length in [(40, 28)] * 3 + [(0, 0), (57, 1), (1, 57), (130, 28),
                                                      (40, 29), (41, 28), (3, 3)]:
        url = bytes(rnd.randrange(256) for _ in range(url_length))
        token = bytes(rnd.randrange(256) for _ in range(token_length))
        expected = whole(url.join(parts).replace(COPY, token))
        assert body.encode(url, token) == expected
    assert len(body.layouts) == bulk.MAX_LAYOUTS


def test_a_body_without_copy_markers_encodes_whole_too():
    parts = [b"x" * 1000, b" middle ", b"end"]
    body = Base64Body(parts)
    for url in (b"https://news.example.com/unsubscribe/abc", b"", b"u" * 57):
        assert body.encode(url) == whole(url.join(parts))


def test_each_copy_encodes_only_the_groups_its_own_bytes_fall_on():
    # 100 lines of fixed text and one token: the layout keeps all but the token's
    # 3-byte groups, one byte either side of it here.
    parts = [b"a" * (57 * 50 + 10) + COPY + b"b" * (57 * 50)]
    body = Base64Body(parts, COPY)
    body.encode(b"", b"T" * 28)
    [layout] = body.layouts.values()
    assert len(layout.prefixes) == 2  # one varying piece, then the rest of the body
    assert layout.segments == [[b"a", b"b"]]


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 29, 30, 54, 55, 56, 57, 58, 113, 114])
@pytest.mark.parametrize(("url_length", "token_length"), [(40, 28), (57, 57), (60, 120)])
def test_links_at_line_boundaries_encode_as_the_whole_body(offset, url_length, token_length):
    """Tokens starting and ending on either side of a line's end, spanning lines, side by
    side and on the URL's line: each reader's body decodes to, and is, the plain one."""
    rnd = random.Random(offset * 1000 + url_length + token_length)
    text = bytes(rnd.randrange(256) for _ in range(400))
    parts = [text[:offset] + COPY + text[offset:offset + 3] + COPY + COPY
             + text[offset + 3:offset + 90] + COPY,
             text[:57 - offset % 57] + COPY + text[200:] + COPY]
    body = Base64Body(parts, COPY)
    for _ in range(3):  # the same layout for each reader, their own bytes in it
        url = bytes(rnd.randrange(256) for _ in range(url_length))
        token = base64.urlsafe_b64encode(bytes(rnd.randrange(256) for _ in range(
            token_length)))[:token_length]
        raw = url.join(parts).replace(COPY, token)
        encoded = body.encode(url, token)
        assert base64.b64decode(encoded) == raw
        assert encoded == whole(raw)
    assert len(body.layouts) == 1


def factory(subject: str = "Week 48", text: str = "Hello", html: str = "<p>Hello</p>",
            tracked: bool = True) -> BulkMessageFactory:
    marker, copy = "UNSUBSCRIBE-test", "COPY-test"
    return BulkMessageFactory(
        RenderedMail(subject, f"{text}\n{copy}\nLeave: {marker}",
                     f'{html}<a href="/r/x/{copy}">x</a><a href="{marker}">Leave</a>'),
        marker, mail_from="Die Zeitung <news@example.com>", list_id="<newsletter.example.com>",
        archive_url="https://news.example.com/archive/7",
        message_id=lambda reader: f"<m.{reader}@example.com>",
        copy_marker=copy if tracked else None,
        copy_token=(lambda reader: f"token-{reader:06d}".encode()) if tracked else None)


@pytest.mark.parametrize(("subject", "name", "text"), [
    ("Week 48", "Ada", "Hello"),
    (".hidden subject", ".dotted name", ".\r\n.\r\n..\n.line"),
    ("a" * 200 + " .b " * 40, "\r\n.evil\r\n.", "\n." * 500),
    ("Zoë’s \u2028.picks", "Zoë Ünal", "é" * 3000),
])
@pytest.mark.parametrize("tracked", [True, False])
def test_no_line_of_a_built_message_starts_with_a_dot(subject, name, text, tracked):
    raw = factory(subject, text, f"<pre>{text}</pre>", tracked).build(
        7, "reader@example.com", name, "https://news.example.com/unsubscribe/AbCd-_")
    lines = raw.split(b"\r\n")
    assert raw.endswith(b"\r\n") and b"\n" not in b"".join(lines) and b"\r" not in b"".join(
        lines)
    assert not [line for line in lines if line.startswith(b".")]
    message = message_from_bytes(raw, policy=policy.default)
    plain = message.get_body(("plain",)).get_payload(decode=True)
    copy = b"token-000007" if tracked else b"COPY-test"
    assert plain == text.encode() + b"\n" + copy + (
        b"\nLeave: https://news.example.com/unsubscribe/AbCd-_")


def test_the_date_header_follows_the_clock_second_by_second():
    made = factory()

    def date(raw: bytes) -> str:
        return message_from_bytes(raw, policy=policy.default)["Date"]

    with time_machine.travel(datetime(2026, 12, 3, 18, 0, 0, 100_000, tzinfo=UTC),
                             tick=False) as clock:
        first = made.build(1, "a@example.com", None, "https://x.example/u/a")
        assert date(first) == "Thu, 03 Dec 2026 18:00:00 +0000"
        clock.shift(0.5)
        assert date(made.build(2, "b@example.com", None, "https://x.example/u/b")) == \
            "Thu, 03 Dec 2026 18:00:00 +0000"
        clock.shift(0.5)
        assert date(made.build(3, "c@example.com", None, "https://x.example/u/c")) == \
            "Thu, 03 Dec 2026 18:00:01 +0000"
        clock.shift(3600)
        assert date(made.build(4, "d@example.com", None, "https://x.example/u/d")) == \
            "Thu, 03 Dec 2026 19:00:01 +0000"
