import pytest

from newsletter.mail.addresses import (
    InvalidAddress,
    canonical_mailbox,
    check_email,
    check_name,
    mailbox,
)
from newsletter.mail.message import build_message
from newsletter.mail.render import RenderedMail


def test_normalized_form_folds_case():
    address = check_email("  Ada.Lovelace@EXAMPLE.com ")
    assert address.given == "Ada.Lovelace@EXAMPLE.com"
    assert address.normalized == "ada.lovelace@example.com"


@pytest.mark.parametrize("raw", [
    "no-at-sign", "a@b", "a@exa\nmple.com", "a\x00@example.com", "x" * 250 + "@example.com",
    None, 7,
])
def test_bad_addresses_are_refused(raw):
    with pytest.raises(InvalidAddress):
        check_email(raw)


@pytest.mark.parametrize("raw", [
    "Eve\r\nBcc: x@example.com", "Eve\u2028Bcc", "=?utf-8?q?Eve=0D=0ABcc:_x@example.com?=",
    "Eve\x00", "x" * 201,
])
def test_header_smuggling_names_are_refused(raw):
    with pytest.raises(InvalidAddress):
        check_name(raw)


def test_blank_name_is_none():
    assert check_name("   ") is None


def test_message_headers_keep_unicode_names_on_one_header():
    message = build_message(
        RenderedMail(subject="Hello\u00e9", text="text", html="<p>html</p>"),
        mail_from="Die Zeitung <news@example.com>",
        to_email="reader@example.com",
        to_name="Zoë, Ünal",
        unsubscribe_url="https://news.example.com/unsubscribe/abc",
        list_id="<newsletter.news.example.com>",
    )
    raw = message.as_bytes()
    headers = raw.split(b"\n\n", 1)[0].decode()
    assert headers.count("\nTo:") == 1 and "Bcc" not in headers
    assert message["To"].addresses[0].display_name == "Zoë, Ünal"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mailbox("a@example.com").display_name == ""


@pytest.mark.parametrize("spelling, canonical", [
    ("victim@example.org", "victim@example.org"),
    ("Victim@EXAMPLE.org", "victim@example.org"),
    ("victim+1@example.org", "victim@example.org"),
    ("victim+news+more@example.org", "victim@example.org"),
    ("v.i.c.t.i.m@gmail.com", "victim@gmail.com"),
    ("V.I.C.Tim+promo@GMail.com", "victim@gmail.com"),
    ("vic.tim@googlemail.com", "victim@gmail.com"),
    ("victim@gmail.com.", "victim@gmail.com"),
    ("vic.tim@example.org", "vic.tim@example.org"),  # other providers: dots matter
    ("vic.tim+x@outlook.com", "vic.tim@outlook.com"),
    ("reader@bücher.example", "reader@xn--bcher-kva.example"),
    ("Reader+tag@BÜCHER.example", "reader@xn--bcher-kva.example"),
    ("reader@xn--bcher-kva.example", "reader@xn--bcher-kva.example"),
    ("+only@example.org", "+only@example.org"),
])
def test_canonical_mailbox(spelling, canonical):
    assert canonical_mailbox(spelling) == canonical


def test_check_email_keeps_the_spelling_and_adds_the_canonical_mailbox():
    address = check_email("V.ic+Tim@BÜCHER.example")
    assert address.given == "V.ic+Tim@BÜCHER.example"
    assert address.normalized == "v.ic+tim@bücher.example"
    assert address.canonical == "v.ic@xn--bcher-kva.example"
    assert address.canonical_domain == "xn--bcher-kva.example"
    assert check_email("Vic.Tim+1@googlemail.com").canonical == "victim@gmail.com"
