"""How SMTP replies and international addresses are handled: pure rules, no server."""

from email import message_from_bytes, message_from_string, policy
from email.headerregistry import Address

import pytest

from newsletter.mail.bulk import BulkMessageFactory
from newsletter.mail.render import RenderedMail
from newsletter.mail.transport import (
    Outcome,
    classify,
    enhanced_code,
    header_address,
    wire_address,
)


@pytest.mark.parametrize(("code", "text", "stage", "outcome"), [
    # The address is gone: a hard bounce.
    (550, "5.1.1 No such user here", "rcpt", Outcome.BOUNCED),
    (550, "5.1.10 Recipient address rejected: null MX", "rcpt", Outcome.BOUNCED),
    (553, "5.1.3 Bad destination mailbox address syntax", "rcpt", Outcome.BOUNCED),
    (550, "No such user", "rcpt", Outcome.BOUNCED),  # no enhanced code: the basic code decides
    (551, "User not local", "rcpt", Outcome.BOUNCED),
    (550, "5.1.1 user unknown", "message", Outcome.BOUNCED),  # refused after the dot
    # About us, not the address: failed for this issue, the reader stays subscribed.
    (550, "5.7.1 Service unavailable; client host blocked using zen.spamhaus.org", "rcpt",
     Outcome.FAILED),
    (554, "5.7.1 Message rejected as spam", "message", Outcome.FAILED),
    (550, "Rejected by policy", "rcpt", Outcome.FAILED),  # policy text, no enhanced code
    (550, "Your IP is on our blocklist", "rcpt", Outcome.FAILED),
    (550, "5.1.1 mailbox blocked by local policy", "rcpt", Outcome.FAILED),  # policy text wins
    (552, "5.2.2 Mailbox full", "rcpt", Outcome.FAILED),
    (554, "5.6.0 Content rejected", "message", Outcome.FAILED),
    (550, "No such user", "message", Outcome.FAILED),  # after DATA, a bare 550 is about content
    (553, "5.1.7 Bad sender address", "mail", Outcome.FAILED),  # about our sender, not the reader
    # Try later.
    (451, "4.7.1 Greylisted", "rcpt", Outcome.DEFERRED),
    (452, "4.2.2 Mailbox full", "rcpt", Outcome.DEFERRED),
    (421, "4.7.0 Too many connections from your host", "rcpt", Outcome.DEFERRED),
    (450, "Mailbox busy", "message", Outcome.DEFERRED),
    (-1, "", "rcpt", Outcome.DEFERRED),
    # The relay turns us away before any recipient: says nothing about the reader.
    (421, "4.3.2 Service shutting down", "mail", Outcome.UNREACHABLE),
    (530, "5.7.0 Authentication required", "mail", Outcome.UNREACHABLE),
    (454, "4.7.0 TLS not available", "mail", Outcome.UNREACHABLE),
])
def test_replies_are_classified_by_their_enhanced_code(code, text, stage, outcome):
    assert classify(code, text, stage) is outcome


def test_enhanced_code_is_read_from_the_start_of_the_reply():
    assert enhanced_code("5.1.1 No such user") == "5.1.1"
    assert enhanced_code("4.7.1 Greylisted") == "4.7.1"
    assert enhanced_code("5.1.10 null MX") == "5.1.10"
    assert enhanced_code("No such user 5.1.1") is None
    assert enhanced_code("5.1.1x") is None
    assert enhanced_code("") is None


def test_domains_go_on_the_wire_in_ascii_and_local_parts_stay():
    assert wire_address("reader@example.com") == "reader@example.com"
    assert wire_address("reader@bücher.example") == "reader@xn--bcher-kva.example"
    assert wire_address("josé@bücher.example") == "josé@xn--bcher-kva.example"
    assert wire_address("用户@例子.测试") == "用户@xn--fsqu00a.xn--0zwm56d"
    for bad in ["no-at-sign", "@example.com", "reader@", "reader@-bücher.example",
                "reader@" + "ü" * 70 + ".example"]:
        with pytest.raises(ValueError):
            wire_address(bad)


def test_header_address_needs_utf8_only_for_a_non_ascii_local_part():
    address, utf8 = header_address(Address("Zoë", "reader", "bücher.example"))
    assert (address.addr_spec, address.display_name, utf8) == (
        "reader@xn--bcher-kva.example", "Zoë", False)
    address, utf8 = header_address(Address("", "josé", "bücher.example"))
    assert (address.addr_spec, utf8) == ("josé@xn--bcher-kva.example", True)


def _factory() -> BulkMessageFactory:
    marker = "UNSUBSCRIBE-test"
    return BulkMessageFactory(
        RenderedMail("Week 48", f"Leave: {marker}", f'<a href="{marker}">Unsubscribe</a>'),
        marker, mail_from="Die Zeitung <news@example.com>", list_id="<newsletter.example.com>",
        archive_url="https://news.example.com/archive/7",
        message_id=lambda reader: f"<m.{reader}@example.com>")


def test_bulk_to_header_of_an_idn_domain_is_plain_ascii():
    raw = _factory().build(1, "reader@bücher.example", "Zoë", "https://news.example.com/u/t")
    to_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"To:"))
    assert to_line.isascii() and b"reader@xn--bcher-kva.example" in to_line
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "reader@xn--bcher-kva.example"
    assert message["To"].addresses[0].display_name == "Zoë"


def test_bulk_to_header_of_a_non_ascii_local_part_is_utf8():
    raw = _factory().build(1, "josé@bücher.example", "Zoë", "https://news.example.com/u/t")
    to_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"To:"))
    # The local part in UTF-8 (RFC 6532; it has no ASCII form), never an encoded word.
    assert to_line.endswith(" <josé@xn--bcher-kva.example>".encode())
    message = message_from_string(raw.decode(), policy=policy.SMTPUTF8)
    assert message["To"].addresses[0].addr_spec == "josé@xn--bcher-kva.example"
    assert message["To"].addresses[0].display_name == "Zoë"
