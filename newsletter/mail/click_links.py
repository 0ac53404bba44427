"""Tracked links: compact signed tokens, and rewriting a rendered mail's links to them.

A tracked link is ``BASE_URL/r/<link token>/<copy token>``:

- the link token names the issue, the copy's topic set (variant) and the link; it
  is the same for every reader of that copy, so a mail is rewritten once per
  variant at render time;
- the copy token is substituted per recipient (like the unsubscribe URL): a random
  copy number, the time the message was built and, only with TRACK_READERS, the
  reader's id.

Each is a packed binary payload followed by a 64-bit MAC, in base64url without
padding; the copy token's MAC also covers the issue, so a copy token cannot be moved
to another issue. Anything else (altered, truncated, padded, another key,
non-canonical base64) reads as None.

Two versions are read. Version 2 (signed now): the link token is a version byte and
three variable-length numbers, the copy token fixed fields whose length says whether
a reader is named, each MAC a keyed BLAKE2b; 16–23 and 22 (27 with the reader)
characters for a site's usual ids. Version 1 (mails sent before): 28 characters
each, MACs HMAC-SHA256 truncated to 64 bits. The shorter tokens and the one-pass MAC
matter because every message of a send carries one copy token per tracked link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import os
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

VERSION = 2
MAC_BYTES = 8  # 64 bits
MAX_NUMBER = 2**31 - 1  # ids and copy numbers fit a signed 32-bit column
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_URLSAFE = bytes.maketrans(b"+/", b"-_")

_LINK_V1 = struct.Struct(">BIII")  # version, issue, variant (0: none), link
_COPY_V1 = struct.Struct(">BIII")  # version, copy number, reader (0: not tracked), sent at
V1_TOKEN_LENGTH = 28  # (13 + 8) bytes in base64url, link and copy tokens alike

_COPY = struct.Struct(">II")  # copy number, sent at; then the reader's id when tracked
_READER = struct.Struct(">I")
COPY_TOKEN_LENGTH = 22  # (8 + 8) bytes in base64url
COPY_TOKEN_WITH_READER_LENGTH = 27  # (12 + 8) bytes
LINK_TOKEN_MAX_LENGTH = 32  # (1 + 3 numbers of at most 5 bytes + 8) bytes


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


def _link_mac(key: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(key=key, digest_size=MAC_BYTES, person=b"nl.link.v2")


def _copy_mac(key: bytes, digest_id: int) -> hashlib.blake2b:
    mac = hashlib.blake2b(key=key, digest_size=MAC_BYTES, person=b"nl.copy.v2")
    mac.update(_varint(digest_id))
    return mac


def _v1_mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), "sha256")[:MAC_BYTES]


def _varint(number: int) -> bytes:
    """LEB128: seven bits a byte, low first; the high bit says another byte follows."""
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _read_varints(data: bytes, count: int) -> list[int] | None:
    """``count`` numbers that fill ``data`` exactly, each in its shortest spelling."""
    numbers, at = [], 0
    for _ in range(count):
        number = shift = 0
        while True:
            if at >= len(data) or shift > 28:
                return None
            byte = data[at]
            at += 1
            number |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        numbers.append(number)
    if at != len(data) or b"".join(map(_varint, numbers)) != data:
        return None
    return numbers


def _encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE, b"=")


def _decode(text: str, lengths: Iterable[int]) -> bytes | None:
    if not isinstance(text, str) or len(text) not in lengths or not _ALPHABET.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:  # a length base64 cannot have
        return None
    # Unused low bits of the last character must be zero: one token, one spelling.
    if _encode(data) != text.encode():
        return None
    return data


class CopySigner:
    """Copy tokens of one issue, as bytes: the MAC's key and issue are hashed once and
    copied per token (every message of a send carries one)."""

    def __init__(self, key: bytes, digest_id: int):
        self.mac = _copy_mac(key, digest_id)

    def __call__(self, copy: int, sent_at: int, subscriber_id: int | None = None) -> bytes:
        payload = _COPY.pack(copy, sent_at)
        if subscriber_id:
            payload += _READER.pack(subscriber_id)
        mac = self.mac.copy()
        mac.update(payload)
        return _encode(payload + mac.digest())


_random_numbers = iter(())


def _forget_random_numbers() -> None:
    global _random_numbers
    _random_numbers = iter(())


os.register_at_fork(after_in_child=_forget_random_numbers)  # a child draws its own


def random_copy_number() -> int:
    """1 to MAX_NUMBER from the system's generator, drawn a thousand at a time (a
    system call for each reader would be one for each message of a send)."""
    global _random_numbers
    number = next(_random_numbers, None)
    if number is None:
        _random_numbers = struct.iter_unpack(">I", os.urandom(4 * 1024))
        number = next(_random_numbers)
    return number[0] & MAX_NUMBER or 1


class LinkSigner:
    """Signs with the first secret, reads with any (key rotation: old links still count)."""

    def __init__(self, secrets: Iterable[str]):
        self.keys = [_key(secret.encode()) for secret in secrets]
        if not self.keys:
            raise ValueError("no secret to sign links with")

    def link_token(self, digest_id: int, variant_id: int | None, link: int) -> str:
        payload = bytes([VERSION]) + b"".join(map(_varint, (digest_id, variant_id or 0, link)))
        mac = _link_mac(self.keys[0])
        mac.update(payload)
        return _encode(payload + mac.digest()).decode()

    def copy_token(self, digest_id: int, copy: int, sent_at: int,
                   subscriber_id: int | None = None) -> str:
        return self.copy_signer(digest_id)(copy, sent_at, subscriber_id).decode()

    def copy_signer(self, digest_id: int) -> CopySigner:
        """Signs the copy tokens of one issue (a send signs one per reader)."""
        return CopySigner(self.keys[0], digest_id)

    def read(self, link_token: str, copy_token: str) -> tuple[LinkClaim, CopyClaim] | None:
        link_data = _decode(link_token, range(16, LINK_TOKEN_MAX_LENGTH + 1))
        if link_data is None:
            return None
        if link_data[0] == 1:
            claims = self._read_v1(link_data, copy_token)
        elif link_data[0] == VERSION:
            claims = self._read_v2(link_data, copy_token)
        else:
            return None
        if claims is None:
            return None
        link, copy = claims
        if not (0 < link.digest_id <= MAX_NUMBER and 0 <= link.link <= MAX_NUMBER
                and (link.variant_id or 0) <= MAX_NUMBER and 0 < copy.copy <= MAX_NUMBER
                and (copy.subscriber_id or 0) <= MAX_NUMBER):
            return None
        return claims

    def _read_v2(self, link_data: bytes, copy_token: str):
        copy_data = _decode(copy_token, (COPY_TOKEN_LENGTH, COPY_TOKEN_WITH_READER_LENGTH))
        if copy_data is None:
            return None
        link_payload, link_sent_mac = link_data[:-MAC_BYTES], link_data[-MAC_BYTES:]
        copy_payload, copy_sent_mac = copy_data[:-MAC_BYTES], copy_data[-MAC_BYTES:]
        numbers = _read_varints(link_payload[1:], 3)
        if numbers is None:
            return None
        digest_id, variant_id, link = numbers
        for key in self.keys:
            link_mac, copy_mac = _link_mac(key), _copy_mac(key, digest_id)
            link_mac.update(link_payload)
            copy_mac.update(copy_payload)
            if (hmac.compare_digest(link_sent_mac, link_mac.digest())
                    and hmac.compare_digest(copy_sent_mac, copy_mac.digest())):
                break
        else:
            return None
        copy, sent_at = _COPY.unpack_from(copy_payload)
        reader = None
        if len(copy_payload) > _COPY.size:
            reader = _READER.unpack_from(copy_payload, _COPY.size)[0]
            if not reader:
                return None
        return (LinkClaim(digest_id, variant_id or None, link), CopyClaim(copy, reader, sent_at))

    def _read_v1(self, link_data: bytes, copy_token: str):
        copy_data = _decode(copy_token, (V1_TOKEN_LENGTH,))
        if len(link_data) != _LINK_V1.size + MAC_BYTES or copy_data is None:
            return None
        link_payload, link_mac = link_data[:_LINK_V1.size], link_data[_LINK_V1.size:]
        copy_payload, copy_mac = copy_data[:_COPY_V1.size], copy_data[_COPY_V1.size:]
        _, digest_id, variant_id, link = _LINK_V1.unpack(link_payload)
        copy_version, copy, subscriber_id, sent_at = _COPY_V1.unpack(copy_payload)
        if copy_version != 1:
            return None
        issue = struct.pack(">I", digest_id)
        if not any(hmac.compare_digest(link_mac, _v1_mac(key, b"L", link_payload))
                   and hmac.compare_digest(copy_mac, _v1_mac(key, b"C", issue, copy_payload))
                   for key in self.keys):
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
