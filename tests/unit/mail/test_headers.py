"""The one header writer: CVE-2024-6923 payloads, folding, and re-parsing by the email package."""

from __future__ import annotations

import base64
import random
from collections import Counter
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr

import pytest

from newsletter.mail.headers import (
    HeaderError,
    SafeHeader,
    address_line,
    header_line,
    neutralise,
    url_list_line,
)

EVIL = "\r\nReply-To: a@evil.example"
PAYLOADS = [
    "Hi =?utf-8?q?=0D=0AReply-To:_a@evil.example?=",  # q-encoded CRLF
    "Hi =?utf-8?b?" + base64.b64encode(EVIL.encode()).decode() + "?=",  # b-encoded CRLF
    "=?utf-8?q?=0ABcc:_victim@evil.example?=",  # exactly an encoded word, bare LF
    "=?UTF-8?Q?=E2=80=A8Reply-To:_a@evil.example?=",  # encoded U+2028
    "Summit\u2028Reply-To: a@evil.example",  # raw U+2028
    "Summit\u2029Cc: a@evil.example\u0085Bcc: b@evil.example",  # U+2029, NEL
    "Summit\r\nBcc: a@evil.example",  # raw CRLF
    "Summit\nBcc: a@evil.example",  # bare LF
    "Summit\rBcc: a@evil.example",  # bare CR
    "Nul\x00Bcc: a@evil.example\x0b\x0c\x1b\x7f\x9b",  # NUL and other C0, DEL, C1
    "Zoë’s picks: " + "Ελλάδα συνομιλίες " * 20 + "=?utf-8?q?=0D=0ACc:_a@evil.example?=",
    "A" * 300 + " =?utf-8?q?=0D=0AReply-To:_a@evil.example?=",  # a word too long to fold
    "=?=?=?utf-8?q?=0D=0A?=?=",  # nested starts
    "lone surrogate \ud800 here",
    "",
]
FORBIDDEN = ["\r", "\n", "\x00", "\u2028", "\u2029", "\x85", "=?"]


def display_name(raw: bytes, header: str = "To") -> str:
    """The display name as RFC 2047 decodes it: whitespace between adjacent encoded
    words is dropped (policy.default's phrase parser puts a space there instead)."""
    name, _ = parseaddr(message_from_bytes(raw, policy=policy.compat32)[header])
    return str(make_header(decode_header(name))) if "=?" in name else name


def header_names(raw: bytes, parse_policy) -> Counter:
    return Counter(name.lower() for name in message_from_bytes(raw, policy=parse_policy))


def reparsed(raw: bytes, parse_policy):
    message = message_from_bytes(raw, policy=parse_policy)
    # The CVE bites when the email package re-folds a parsed header: do that too.
    again = message.as_bytes(policy=policy.SMTP if parse_policy is policy.default else
                             policy.compat32)
    return message, again


@pytest.mark.parametrize("payload", PAYLOADS)
def test_neutralised_text_holds_nothing_that_ends_a_line_or_starts_an_encoded_word(payload):
    text = neutralise(payload)
    assert not any(bad in text for bad in FORBIDDEN)
    assert text == text.strip() and "  " not in text
    assert neutralise(text) == text


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("parse_policy", [policy.default, policy.compat32],
                         ids=["default", "compat32"])
def test_subject_is_one_header_decoding_to_the_neutralised_text(payload, parse_policy):
    raw = header_line("Subject", payload) + b"X-Probe: 1\r\n\r\nbody\r\n"
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    message, again = reparsed(raw, parse_policy)
    assert header_names(raw, parse_policy) == Counter({"subject": 1, "x-probe": 1})
    assert header_names(again, parse_policy) == Counter({"subject": 1, "x-probe": 1})
    if parse_policy is policy.default:
        assert str(message["Subject"]) == neutralise(payload)
        assert str(message_from_bytes(again, policy=policy.default)["Subject"]) == \
            neutralise(payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_display_names_stay_in_one_to_header(payload):
    raw = address_line("To", "reader@example.com", payload) + b"\r\nbody\r\n"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    for parse_policy in (policy.default, policy.compat32):
        _, again = reparsed(raw, parse_policy)
        assert header_names(raw, parse_policy) == Counter({"to": 1})
        assert header_names(again, parse_policy) == Counter({"to": 1})
    address = message_from_bytes(raw, policy=policy.default)["To"].addresses[0]
    assert address.addr_spec == "reader@example.com"
    assert address.display_name.replace(" ", "") == neutralise(payload).replace(" ", "")
    assert display_name(raw) == neutralise(payload)


@pytest.mark.parametrize("addr_spec", [
    "a@example.com\r\nBcc: x@evil.example", "a b@example.com", "<a@example.com>",
    "a@example.com, b@evil.example", "no-at-sign", "a\x00@example.com",
])
def test_addresses_that_cannot_be_written_are_refused(addr_spec):
    with pytest.raises(HeaderError):
        address_line("To", addr_spec, "Name")


def test_idn_domains_are_written_in_ascii():
    assert address_line("To", "zoe@bücher.example", "Zoë") == \
        b"To: =?utf-8?q?Zo=C3=AB?= <zoe@xn--bcher-kva.example>\r\n"


def test_urls_cannot_leave_their_brackets_or_the_header():
    raw = url_list_line("List-Unsubscribe", "https://x.example/u/a b>\r\nBcc: e@evil.example",
                        "https://x.example/?a=?utf-8?q?=0D=0ACc:_e@evil.example?=") + b"\r\n"
    for parse_policy in (policy.default, policy.compat32):
        assert header_names(raw, parse_policy) == Counter({"list-unsubscribe": 1})
    value = str(message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"])
    assert value == ("<https://x.example/u/a%20b%3E%20Bcc:%20e@evil.example>, "
                     "<https://x.example/?a=%3Futf-8?q?=0D=0ACc:_e@evil.example?=>")


def test_plain_ascii_stays_readable_and_folds_at_spaces():
    assert header_line("Subject", "Week 48: talks resume") == b"Subject: Week 48: talks resume\r\n"
    long = " ".join(["word"] * 40)
    raw = header_line("Subject", long)
    assert b"=?" not in raw and all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert str(message_from_bytes(raw + b"\r\n", policy=policy.default)["Subject"]) == long


def test_encoded_words_never_split_a_character():
    raw = header_line("Subject", "😀" * 60)
    for word in raw.split():
        if word.startswith(b"=?"):
            assert len(word) <= 75
            base64.b16decode(word[10:-2].replace(b"=", b""))  # whole bytes
            assert word[10:-2].replace(b"=", b"").decode("ascii")
    assert str(message_from_bytes(raw + b"\r\n", policy=policy.default)["Subject"]) == "😀" * 60


def test_safe_headers_in_an_email_message_are_written_as_encoded():
    message = EmailMessage()
    message["To"] = SafeHeader.address("To", "reader@example.com", PAYLOADS[0])
    message["Subject"] = SafeHeader.text("Subject", PAYLOADS[1])
    message.set_content("body")
    assert message["To"].addresses[0].addr_spec == "reader@example.com"
    assert str(message["Subject"]) == neutralise(PAYLOADS[1])
    for output_policy in (policy.SMTP, policy.SMTPUTF8, policy.default, policy.compat32):
        raw = message.as_bytes(policy=output_policy)
        names = header_names(raw.replace(b"\r\n", b"\n"), policy.compat32)
        assert names == Counter({"to": 1, "subject": 1, "content-type": 1,
                                 "content-transfer-encoding": 1, "mime-version": 1})


def test_random_mixtures_of_dangerous_pieces_never_add_a_header():
    pieces = ["=?", "?=", "utf-8", "?q?", "?b?", "=0D", "=0A", "=E2=80=A8", "\r", "\n", "\x00",
              "\u2028", "\u2029", "\x85", "\t", " ", "Bcc:", "Reply-To:", "a@evil.example", "é",
              "😀", "_", "=", "?", '"', "<", ">", ",", "\\", "x" * 40]
    generator = random.Random(6923)
    for _ in range(600):
        value = "".join(generator.choice(pieces) for _ in range(generator.randint(0, 40)))
        raw = (header_line("Subject", value) + address_line("To", "r@example.com", value)
               + b"\r\nbody\r\n")
        for parse_policy in (policy.default, policy.compat32):
            _, again = reparsed(raw, parse_policy)
            expected = Counter({"subject": 1, "to": 1})
            assert header_names(raw, parse_policy) == expected, value
            assert header_names(again, parse_policy) == expected, value
        parsed = message_from_bytes(raw, policy=policy.default)
        assert str(parsed["Subject"]) == neutralise(value), value
        assert display_name(raw) == neutralise(value), value


def test_an_internationalised_mailbox_is_written_in_utf8_under_any_policy():
    message = EmailMessage()
    message["To"] = SafeHeader.address("To", "zoë@bücher.example", "Zoë")
    message.set_content("body")
    for output_policy in (policy.SMTP, policy.SMTPUTF8):
        raw = message.as_bytes(policy=output_policy)
        assert raw.startswith("To: =?utf-8?q?Zo=C3=AB?= <zoë@xn--bcher-kva.example>\r\n".encode())
        parsed = message_from_bytes(raw, policy=policy.SMTPUTF8)
        assert list(parsed) == ["To", "Content-Type", "Content-Transfer-Encoding",
                                "MIME-Version"]
        # The parser keeps undecoded bytes as surrogates.
        username = parsed["To"].addresses[0].username
        assert username.encode("ascii", "surrogateescape").decode() == "zoë"


def test_a_url_written_as_it_is_is_what_percent_encoding_would_have_made():
    # One URL of safe characters skips the general path: both must give the same line.
    from newsletter.mail import headers

    alphabet = "aZ09/:@!$&'()*+,;=?#[]-._~% <>\"\\\r\n\t\x00é\u2028{}|^`"
    rnd = random.Random(7)
    urls = ["https://news.example.com/unsubscribe/AbC-d_e", "https://x.example/?a=?b",
            "https://x.example/u/" + "k" * 200, "https://x.example/=?utf-8?q?x?="]
    urls += ["https://x.example/" + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
             for _ in range(2000)]
    fast = 0
    for url in urls:
        general = headers._fold_words("List-Unsubscribe",
                                      headers._bracketed_urls([url]).split(" "))
        assert headers.url_list_value("List-Unsubscribe", url) == general, url
        fast += bool(headers._URL_AS_IT_IS.fullmatch(url)) and "=?" not in url
    assert fast >= 3  # the quick path was taken, and agreed
