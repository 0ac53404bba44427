"""Tracked links: compact signed tokens, and rewriting a rendered mail's links to them.

A tracked link is ``BASE_URL/r/<link token>/<copy token>``:

- the link token names the issue, the copy's topic set (variant) and the link; it
  is the same for every reader of that copy, so a mail is rewritten once per
  variant at render time;
- the copy token is substituted per recipient (like the unsubscribe URL): a random
  copy number, the time the message was built and, only with TRACK_READERS, the
  reader's id.

Each is a packed binary payload followed by an HMAC-SHA256 truncated to 64 bits, in
base64url without padding; the copy token's MAC also covers the issue, so a copy
token cannot be moved to another issue. Anything else (altered, truncated, padded,
another key, non-canonical base64) reads as None.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

VERSION = 1
MAC_BYTES = 8  # 64 bits
_LINK = struct.Struct(">BIII")  # version, issue, variant (0: none), link
_COPY = struct.Struct(">BIII")  # version, copy number, reader (0: not tracked), sent at
LINK_TOKEN_LENGTH = 28  # (13 + 8) bytes in base64url
COPY_TOKEN_LENGTH = 28  # (13 + 8) bytes in base64url
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
MAX_NUMBER = 2**31 - 1  # ids and copy numbers fit a signed 32-bit column


OPEN_PIXEL = 0  # the link number of an open pixel; links are numbered from 1


@dataclass(frozen=True)
class LinkClaim:
    digest_id: int
    variant_id: int | None
    link: int


@dataclass(frozen=True)
class CopyClaim:
    copy: int
    subscriber_id: int | None
    sent_at: int  # Unix seconds when the reader's message was built


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, b"newsletter.click-links", hashlib.sha256).digest()


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), "sha256")[:MAC_BYTES]


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(text: str, length: int, size: int) -> bytes | None:
    if not isinstance(text, str) or len(text) != length or not _ALPHABET.fullmatch(text):
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Unused low bits of the last character must be zero: one token, one spelling.
    if len(data) != size or _encode(data) != text:
        return None
    return data


_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class CopySigner:
    """Copy tokens of one issue: the HMAC of ``_mac(key, b"C", issue, payload)``, with
    the key's padded blocks and the issue hashed once and copied per token, not hashed
    again for each reader (a third of the cost; every message of a send carries one)."""

    def __init__(self, key: bytes, digest_id: int):
        padded = key.ljust(64, b"\0")  # keys are 32-byte digests: shorter than a block
        self.inner = hashlib.sha256(padded.translate(_INNER_PAD))
        self.inner.update(b"C" + struct.pack(">I", digest_id))
        self.outer = hashlib.sha256(padded.translate(_OUTER_PAD))

    def __call__(self, copy: int, sent_at: int, subscriber_id: int | None = None) -> str:
        payload = _COPY.pack(VERSION, copy, subscriber_id or 0, sent_at)
        inner = self.inner.copy()
        inner.update(payload)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return _encode(payload + outer.digest()[:MAC_BYTES])


class LinkSigner:
    """Signs with the first secret, reads with any (key rotation: old links still count)."""

    def __init__(self, secrets: Iterable[str]):
        self.keys = [_key(secret.encode()) for secret in secrets]
        if not self.keys:
            raise ValueError("no secret to sign links with")

    def link_token(self, digest_id: int, variant_id: int | None, link: int) -> str:
        payload = _LINK.pack(VERSION, digest_id, variant_id or 0, link)
        return _encode(payload + _mac(self.keys[0], b"L", payload))

    def copy_token(self, digest_id: int, copy: int, sent_at: int,
                   subscriber_id: int | None = None) -> str:
        return self.copy_signer(digest_id)(copy, sent_at, subscriber_id)

    def copy_signer(self, digest_id: int) -> CopySigner:
        """Signs the copy tokens of one issue (a send signs one per reader)."""
        return CopySigner(self.keys[0], digest_id)

    def read(self, link_token: str, copy_token: str) -> tuple[LinkClaim, CopyClaim] | None:
        link_data = _decode(link_token, LINK_TOKEN_LENGTH, _LINK.size + MAC_BYTES)
        copy_data = _decode(copy_token, COPY_TOKEN_LENGTH, _COPY.size + MAC_BYTES)
        if link_data is None or copy_data is None:
            return None
        link_payload, link_mac = link_data[:_LINK.size], link_data[_LINK.size:]
        copy_payload, copy_mac = copy_data[:_COPY.size], copy_data[_COPY.size:]
        version, digest_id, variant_id, link = _LINK.unpack(link_payload)
        copy_version, copy, subscriber_id, sent_at = _COPY.unpack(copy_payload)
        if version != VERSION or copy_version != VERSION:
            return None
        issue = struct.pack(">I", digest_id)
        if not any(hmac.compare_digest(link_mac, _mac(key, b"L", link_payload))
                   and hmac.compare_digest(copy_mac, _mac(key, b"C", issue, copy_payload))
                   for key in self.keys):
            return None
        if not (0 < digest_id <= MAX_NUMBER and 0 <= link <= MAX_NUMBER
                and variant_id <= MAX_NUMBER and 0 < copy <= MAX_NUMBER
                and subscriber_id <= MAX_NUMBER):
            return None
        return (LinkClaim(digest_id, variant_id or None, link),
                CopyClaim(copy, subscriber_id or None, sent_at))


_HREF = re.compile(r'(href=)(["\'])(.*?)\2', re.IGNORECASE | re.DOTALL)


def web_links(body: str) -> list[str]:
    """The distinct http(s) URLs of a rendered HTML body's hrefs, in order, spelled as
    ``rewrite_html`` matches them."""
    found = (html.unescape(match.group(3)).strip() for match in _HREF.finditer(body))
    return list(dict.fromkeys(url for url in found
                              if url.lower().startswith(("http://", "https://"))))


def rewrite_html(body: str, targets: Mapping[str, int], href_for: Callable[[int], str]) -> str:
    """Each ``href`` whose URL is one of ``targets`` (url -> link number) points at
    ``href_for(link)`` instead; other links (unsubscribe, archive, preferences) stay.
    Works on rendered HTML, so any template's links can be tracked."""

    def replace(match: re.Match) -> str:
        link = targets.get(html.unescape(match.group(3)).strip())
        if link is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html.escape(href_for(link))}{match.group(2)}"

    return _HREF.sub(replace, body)


def rewrite_text(body: str, targets: Mapping[str, int], href_for: Callable[[int], str]) -> str:
    """The plain-text part: each whole URL (delimited by space, <> or parentheses) that
    is one of ``targets`` is replaced."""
    if not targets:
        return body
    pattern = re.compile(r"(?<![^\s<(\[])(" + "|".join(
        re.escape(url) for url in sorted(targets, key=len, reverse=True)) + r")(?=[\s>)\]]|$)")
    return pattern.sub(lambda match: href_for(targets[match.group(1)]), body)
