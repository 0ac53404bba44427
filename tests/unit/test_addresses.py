import pytest

from newsletter.mail.addresses import InvalidAddress, check_email, check_name, mailbox
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
