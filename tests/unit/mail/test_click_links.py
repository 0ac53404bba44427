"""Tracked-link tokens: compact, and only ours read back; links rewritten in rendered mail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

import pytest

from newsletter.mail.click_links import (
    COPY_TOKEN_LENGTH,
    COPY_TOKEN_WITH_READER_LENGTH,
    MAX_NUMBER,
    LinkSigner,
    random_copy_number,
    rewrite_html,
    rewrite_text,
)

SIGNER = LinkSigner(["k" * 32])
KEY = SIGNER.keys[0]
LINK = SIGNER.link_token(7, 3, 42)
COPY = SIGNER.copy_token(7, 123456, 1_700_000_000)
COPY_WITH_READER = SIGNER.copy_token(7, 5, 1_700_000_000, subscriber_id=99)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _v2_pair(link_payload: bytes, copy_payload: bytes, digest_id: bytes) -> tuple[str, str]:
    """A version 2 pair signed by hand, as the format documents it: keyed BLAKE2b."""
    link_mac = hashlib.blake2b(link_payload, key=KEY, digest_size=8, person=b"nl.link.v2")
    copy_mac = hashlib.blake2b(digest_id + copy_payload, key=KEY, digest_size=8,
                               person=b"nl.copy.v2")
    return _b64(link_payload + link_mac.digest()), _b64(copy_payload + copy_mac.digest())


def _v1_pair(digest_id: int, variant_id: int, link: int, copy: int, reader: int,
             sent_at: int) -> tuple[str, str]:
    """A version 1 pair, as mails sent before version 2 carry them: HMAC-SHA256."""
    link_payload = struct.pack(">BIII", 1, digest_id, variant_id, link)
    copy_payload = struct.pack(">BIII", 1, copy, reader, sent_at)
    link_mac = hmac.digest(KEY, b"L" + link_payload, "sha256")[:8]
    copy_mac = hmac.digest(KEY, b"C" + struct.pack(">I", digest_id) + copy_payload,
                           "sha256")[:8]
    return _b64(link_payload + link_mac), _b64(copy_payload + copy_mac)


def test_a_token_pair_reads_back_what_it_names():
    link, copy = SIGNER.read(LINK, COPY)
    assert (link.digest_id, link.variant_id, link.link) == (7, 3, 42)
    assert (copy.copy, copy.subscriber_id, copy.sent_at) == (123456, None, 1_700_000_000)


def test_tokens_are_short_for_a_site_s_usual_ids():
    assert len(LINK) == 16
    assert len(SIGNER.link_token(12_000, 150_000, 2_000_000)) == 23
    assert len(SIGNER.link_token(MAX_NUMBER, MAX_NUMBER, MAX_NUMBER)) == 32
    assert len(COPY) == COPY_TOKEN_LENGTH == 22
    assert len(COPY_WITH_READER) == COPY_TOKEN_WITH_READER_LENGTH == 27


def test_the_reader_is_named_only_when_asked():
    _, copy = SIGNER.read(LINK, COPY_WITH_READER)
    assert copy.subscriber_id == 99


def test_the_send_s_signer_makes_the_documented_token():
    """Every message of a send signs its copy token with the per-issue signer (key and
    issue hashed once); it must make what the format says, every time it is called."""
    for reader, payload in ((None, struct.pack(">II", 123456, 1_700_000_000)),
                            (99, struct.pack(">III", 123456, 1_700_000_000, 99))):
        link, copy = _v2_pair(bytes([2, 7, 3, 42]), payload, bytes([7]))
        assert link == LINK
        sign = SIGNER.copy_signer(7)
        assert sign(123456, 1_700_000_000, reader).decode() == copy
        assert sign(123456, 1_700_000_000, reader).decode() == copy  # its state is copied


def _flip(token: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return token[:index] + alphabet[(alphabet.index(token[index]) + 1) % 64] + token[index + 1:]


@pytest.mark.parametrize("index", range(len(LINK)))
def test_any_altered_character_of_the_link_token_is_refused(index):
    assert SIGNER.read(_flip(LINK, index), COPY) is None


@pytest.mark.parametrize("copy", [COPY, COPY_WITH_READER])
def test_any_altered_character_of_the_copy_token_is_refused(copy):
    assert SIGNER.read(LINK, copy) is not None
    for index in range(len(copy)):
        assert SIGNER.read(LINK, _flip(copy, index)) is None


@pytest.mark.parametrize("link, copy", [
    (LINK[:-1], COPY), (LINK, COPY[:-1]), (LINK + "A", COPY), (LINK, COPY + "A"),
    (LINK + "=", COPY), (LINK, COPY + "=="), ("", COPY), (LINK, ""), (COPY, LINK),
    (LINK + "AAAA", COPY), (LINK, COPY_WITH_READER[:-5]), (LINK, COPY + "AAAAA"),
    (LINK + "A", COPY), (LINK[:-2], COPY), (LINK * 2, COPY), (LINK, COPY * 2),
    (LINK.replace(LINK[3], "+"), COPY), (LINK, COPY.replace(COPY[3], "/")),
    (LINK, COPY.replace(COPY[0], "%")), ("A" * 16, "A" * COPY_TOKEN_LENGTH),
    ("A" * 17, COPY), ("A" * 28, "A" * 28), (None, COPY), (LINK, 7),
])
def test_truncated_padded_swapped_or_foreign_alphabet_tokens_are_refused(link, copy):
    assert SIGNER.read(link, copy) is None


def test_another_key_or_another_issue_is_refused():
    other = LinkSigner(["o" * 32])
    assert other.read(LINK, COPY) is None
    assert SIGNER.read(other.link_token(7, 3, 42), other.copy_token(7, 1, 1)) is None
    # A copy token of issue 7 does not work with a link of issue 8.
    assert SIGNER.read(SIGNER.link_token(8, 3, 42), COPY) is None


def test_a_key_rotation_still_reads_old_links():
    rotated = LinkSigner(["new" * 11, "k" * 32])
    assert rotated.read(LINK, COPY) is not None


@pytest.mark.parametrize(("link_payload", "copy_payload"), [
    (bytes([2, 0x87, 0x00, 3, 42]), struct.pack(">II", 5, 1)),  # 7 spelled in two bytes
    (bytes([2, 7, 3, 42, 0]), struct.pack(">II", 5, 1)),  # a fourth number
    (bytes([2, 7, 3]), struct.pack(">II", 5, 1)),  # two numbers
    (bytes([2, 7, 3, 0xFF]), struct.pack(">II", 5, 1)),  # a number cut short
    (bytes([2, 7, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), struct.pack(">II", 5, 1)),  # 2**32 - 1
    (bytes([2, 0, 3, 42]), struct.pack(">II", 5, 1)),  # issue 0
    (bytes([3, 7, 3, 42]), struct.pack(">II", 5, 1)),  # a version to come
    (bytes([2, 7, 3, 42]), struct.pack(">II", 0, 1)),  # copy 0
    (bytes([2, 7, 3, 42]), struct.pack(">II", 2**31, 1)),  # copy over the column
    (bytes([2, 7, 3, 42]), struct.pack(">III", 5, 1, 0)),  # a reader 0 spelled out
    (bytes([2, 7, 3, 42]), struct.pack(">III", 5, 1, 2**31)),  # reader over the column
])
def test_tokens_signed_with_our_key_but_out_of_shape_are_refused(link_payload, copy_payload):
    """Only the signer makes tokens, but a stolen key or a bug must not make a claim
    the database cannot hold, nor two spellings of one link."""
    assert SIGNER.read(*_v2_pair(link_payload, copy_payload, bytes([7]))) is None


def test_links_in_mails_sent_before_version_2_still_read():
    link, copy = _v1_pair(7, 3, 42, 123456, 0, 1_700_000_000)
    claims = SIGNER.read(link, copy)
    assert claims is not None
    assert (claims[0].digest_id, claims[0].variant_id, claims[0].link) == (7, 3, 42)
    assert (claims[1].copy, claims[1].subscriber_id, claims[1].sent_at) == (
        123456, None, 1_700_000_000)
    assert SIGNER.read(*_v1_pair(7, 0, 42, 5, 99, 1))[1].subscriber_id == 99
    for index in range(len(link)):
        assert SIGNER.read(_flip(link, index), copy) is None
        assert SIGNER.read(link, _flip(copy, index)) is None
    assert SIGNER.read(link, COPY) is None  # a version 2 copy token with a version 1 link
    assert SIGNER.read(LINK, copy) is None  # and the other way round
    assert SIGNER.read(*_v1_pair(7, 3, 42, 0, 0, 1)) is None  # copy 0


def test_copy_numbers_are_random_in_range_and_a_forked_child_draws_its_own():
    numbers = [random_copy_number() for _ in range(3000)]  # past one draw of the pool
    assert all(1 <= number <= MAX_NUMBER for number in numbers)
    assert len(set(numbers)) > 2990
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child's next number, sent to the parent
        os.write(write, struct.pack(">I", random_copy_number()))
        os._exit(0)
    os.waitpid(child, 0)
    from_child = struct.unpack(">I", os.read(read, 4))[0]
    os.close(read), os.close(write)
    assert from_child != random_copy_number()  # without the reset: the same pool, same number


def test_only_the_chosen_urls_are_rewritten_in_html_and_text():
    html = ('<a href="https://ex.com/a?x=1&amp;y=2">A</a> <a href="https://ex.com/b">B</a>'
            ' <a href=\'https://ex.com/a?x=1&amp;y=2\'>again</a>'
            ' <a href="https://news.example/unsubscribe/XYZ">Unsubscribe</a>')
    targets = {"https://ex.com/a?x=1&y=2": 1, "https://ex.com/c": 3}
    out = rewrite_html(html, targets, lambda link: f"https://n.example/r/{link}?a=1&b=2")
    assert out.count('https://n.example/r/1?a=1&amp;b=2') == 2
    assert 'href="https://ex.com/b"' in out and "unsubscribe/XYZ" in out
    text = "Read https://ex.com/a?x=1&y=2 and (https://ex.com/c) not https://ex.com/cc"
    assert rewrite_text(text, targets, lambda link: f"<{link}>") == (
        "Read <1> and (<3>) not https://ex.com/cc")
