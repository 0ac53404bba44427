from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from newsletter.issues.schedule import parse_schedule, period_key
from newsletter.mail.bulk import BulkMessageFactory
from newsletter.mail.render import RenderedMail


def test_schedule_parsing():
    schedule = parse_schedule("Friday 07:30 Europe/Paris")
    assert (schedule.day, schedule.hour, schedule.minute) == ("fri", 7, 30)
    for bad in ["mon", "someday 08:00 UTC", "mon 25:00 UTC", "mon 08:00 Mars/Olympus"]:
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_period_key_uses_the_schedules_timezone():
    schedule = parse_schedule("mon 00:30 Pacific/Auckland")
    # Sunday 12:00 UTC is already Monday in Auckland: the next ISO week there.
    sunday_noon_utc = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert period_key(sunday_noon_utc, schedule) == "weekly-2026-W49"
    assert period_key(sunday_noon_utc, parse_schedule("mon 08:00 UTC")) == "weekly-2026-W48"


def test_bulk_messages_carry_compliance_headers_and_substitute_the_link():
    marker = "UNSUBSCRIBE-test"
    factory = BulkMessageFactory(
        RenderedMail("Week 48: Zoë’s picks", f"Leave: {marker}",
                     f'<p>Hello</p><a href="{marker}">Unsubscribe</a>'),
        marker, mail_from="Die Zeitung <news@example.com>", list_id="<newsletter.example.com>",
        archive_url="https://news.example.com/archive/7",
        message_id=lambda reader: f"<m.{reader}@example.com>")
    raw = factory.build(42, "zoe@example.com", "Zoë Ünal", "https://news.example.com/u/tok")
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"] == "Zoë Ünal <zoe@example.com>"
    assert message["Subject"] == "Week 48: Zoë’s picks"
    assert message["Message-ID"] == "<m.42@example.com>"
    assert message["List-Unsubscribe"] == "<https://news.example.com/u/tok>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Archive"] == "<https://news.example.com/archive/7>"
    assert message.get_body(("plain",)).get_content() == "Leave: https://news.example.com/u/tok"
    assert 'href="https://news.example.com/u/tok"' in message.get_body(("html",)).get_content()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


@pytest.mark.parametrize("before", [0, 1, 56, 57, 58, 114, 1000])
@pytest.mark.parametrize("links", [0, 1, 3])
def test_a_body_encoded_from_its_fixed_lines_is_the_whole_body_encoded(before, links):
    import base64

    from newsletter.mail.bulk import Base64Body

    parts = [(bytes(range(256)) * 4)[:before], *[b"middle \xe2\x80\x94 part"] * links]
    url = b"https://news.example.com/unsubscribe/abc"
    expected = base64.encodebytes(url.join(parts)).replace(b"\n", b"\r\n")
    assert Base64Body(parts).encode(url) == expected
    assert Base64Body(parts).encode(b"") == base64.encodebytes(b"".join(parts)).replace(
        b"\n", b"\r\n")


@pytest.mark.parametrize("at", [0, 1, 56, 57, 58, 200])
def test_a_body_with_copy_markers_encodes_as_the_whole_body_with_the_token_in_place(at):
    import base64

    from newsletter.mail.bulk import Base64Body

    copy = b"COPY-0123"
    head = (bytes(range(256)) * 2)[:at] + b'<a href="/r/abc/' + copy + b'">x</a>' + b"y" * 90
    parts = [head, b" footer " + copy + b" end"]
    url, token = b"https://news.example.com/unsubscribe/abc", b"TOKEN-of-the-reader"
    expected = base64.encodebytes(url.join(parts).replace(copy, token)).replace(b"\n", b"\r\n")
    assert Base64Body(parts, copy).encode(url, token) == expected
