"""Tracked-link tokens: compact, and only ours read back; links rewritten in rendered mail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from newsletter.mail.click_links import (
    COPY_TOKEN_LENGTH,
    LINK_TOKEN_LENGTH,
    LinkSigner,
    rewrite_html,
    rewrite_text,
)

SIGNER = LinkSigner(["k" * 32])
LINK = SIGNER.link_token(7, 3, 42)
COPY = SIGNER.copy_token(7, 123456, 1_700_000_000)


def test_a_token_pair_reads_back_what_it_names():
    link, copy = SIGNER.read(LINK, COPY)
    assert (link.digest_id, link.variant_id, link.link) == (7, 3, 42)
    assert (copy.copy, copy.subscriber_id, copy.sent_at) == (123456, None, 1_700_000_000)
    assert len(LINK) == LINK_TOKEN_LENGTH and len(COPY) == COPY_TOKEN_LENGTH


def test_the_reader_is_named_only_when_asked():
    _, copy = SIGNER.read(LINK, SIGNER.copy_token(7, 5, 1, subscriber_id=99))
    assert copy.subscriber_id == 99


def _flip(token: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return token[:index] + alphabet[(alphabet.index(token[index]) + 1) % 64] + token[index + 1:]


@pytest.mark.parametrize("index", range(LINK_TOKEN_LENGTH))
def test_any_altered_character_of_the_link_token_is_refused(index):
    assert SIGNER.read(_flip(LINK, index), COPY) is None


@pytest.mark.parametrize("index", range(COPY_TOKEN_LENGTH))
def test_any_altered_character_of_the_copy_token_is_refused(index):
    assert SIGNER.read(LINK, _flip(COPY, index)) is None


@pytest.mark.parametrize("link, copy", [
    (LINK[:-1], COPY), (LINK, COPY[:-1]), (LINK + "A", COPY), (LINK, COPY + "A"),
    (LINK + "=", COPY), (LINK, COPY + "=="), ("", COPY), (LINK, ""), (COPY, LINK),
    (LINK.replace(LINK[3], "+"), COPY), (LINK, COPY.replace(COPY[3], "/")),
    (LINK, COPY.replace(COPY[0], "%")), ("A" * LINK_TOKEN_LENGTH, "A" * COPY_TOKEN_LENGTH),
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


@pytest.mark.parametrize(("digest_id", "copy", "reader"), [
    (7, 123456, None), (1, 1, 99), (2**31 - 1, 2**31 - 1, 2**31 - 1)])
def test_a_send_s_copy_signer_makes_the_standard_hmac_token(digest_id, copy, reader):
    """The per-issue signer (key blocks hashed once) signs exactly what an HMAC-SHA256 of
    the same key signs: tokens in mails already sent and new ones read alike."""
    key = SIGNER.keys[0]
    payload = struct.pack(">BIII", 1, copy, reader or 0, 1_700_000_000)
    mac = hmac.digest(key, b"C" + struct.pack(">I", digest_id) + payload, "sha256")[:8]
    expected = base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")
    sign = SIGNER.copy_signer(digest_id)
    assert sign(copy, 1_700_000_000, reader) == expected
    assert sign(copy, 1_700_000_000, reader) == expected  # its state is copied, not used up
    _, claim = SIGNER.read(SIGNER.link_token(digest_id, None, 1), expected)
    assert (claim.copy, claim.subscriber_id) == (copy, reader)
    # A longer secret still gives a 32-byte key: the same holds for any configured secret.
    assert hashlib.sha256().digest_size == len(LinkSigner(["s" * 500]).keys[0])


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
