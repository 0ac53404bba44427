"""Quiet hours: reading a send window, and whether it is open on a reader's clock at an
explicit moment, across both DST changes (Asia/Tokyo has none)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask

from newsletter.models import Sequence
from newsletter.sequences.quiet_hours import Window, WindowError, format_window, parse_window


@pytest.fixture
def site():
    site = Flask(__name__)
    site.config.update(DIGEST_SCHEDULE="mon 08:00 Europe/Paris", SEND_IN_READER_TIME=True)
    with site.app_context():
        yield site


def test_a_window_reads_as_two_times_of_day():
    assert parse_window("08:00-20:00") == (480, 1200)
    assert parse_window(" 07:30 – 21:15 ") == (450, 1275)
    assert parse_window("") is None and parse_window(None) is None
    assert format_window(480, 1200) == "08:00-20:00" and format_window(None, None) == ""


@pytest.mark.parametrize(("text", "says"), [
    ("20:00-08:00", "ends (08:00) before it starts (20:00)"),
    ("08:00-08:00", "before it starts"),
    ("8-20", "is not a time of day: write HH:MM"),
    ("08:00-24:00", "'24:00' is not a time of day"),
    ("08:60-20:00", "is not a time of day"),
    ("morning", "two times of day"),
    ("08:00-20:00-22:00", "is not a time of day"),
])
def test_a_bad_window_says_what_to_write(text, says):
    with pytest.raises(WindowError) as raised:
        parse_window(text)
    assert says in str(raised.value)


def is_open(window: str, zone: str | None, moment: str) -> bool:
    start, end = parse_window(window)
    sequence = Sequence(window_start=start, window_end=end)
    return Window(sequence, datetime.fromisoformat(moment).replace(tzinfo=UTC)).open_for(zone)


@pytest.mark.parametrize(("zone", "window", "shut", "opens"), [
    # Tokyo, UTC+9 all year: 08:00 there is 23:00 UTC the day before.
    ("Asia/Tokyo", "08:00-20:00", "2026-03-07T22:59", "2026-03-07T23:00"),
    # New York, the night its clocks skip 02:00-03:00 (8 March 2026): a window opening
    # at 02:30 opens at 03:00 EDT, the first moment the clock reads past 02:30.
    ("America/New_York", "02:30-20:00", "2026-03-08T06:59", "2026-03-08T07:00"),
    # Paris skips 02:00-03:00 on 29 March 2026 (01:00 UTC).
    ("Europe/Paris", "02:30-20:00", "2026-03-29T00:59", "2026-03-29T01:00"),
    # Paris on winter time again after 25 October: 08:00 is 07:00 UTC, not 06:00.
    ("Europe/Paris", "08:00-20:00", "2026-10-26T06:59", "2026-10-26T07:00"),
    # New York back on EST after 1 November: 08:00 is 13:00 UTC, not 12:00.
    ("America/New_York", "08:00-20:00", "2026-11-02T12:59", "2026-11-02T13:00"),
    # A reader without a zone: the site's (Paris, summer time).
    (None, "08:00-20:00", "2026-06-01T05:59", "2026-06-01T06:00"),
    # A zone the database does not know: the site's too.
    ("Mars/Olympus", "08:00-20:00", "2026-06-01T05:59", "2026-06-01T06:00"),
])
def test_a_window_opens_at_its_hour_on_the_readers_clock(site, zone, window, shut, opens):
    assert not is_open(window, zone, shut)
    assert is_open(window, zone, opens)


def test_in_the_repeated_hour_the_window_follows_the_clock(site):
    # Paris, 25 October 2026: 02:00-03:00 comes twice (CEST 00:00-01:00 UTC, then CET
    # 01:00-02:00 UTC). A window until 02:30 is open in both passes' first half.
    window = "00:00-02:30"
    assert is_open(window, "Europe/Paris", "2026-10-25T00:29")  # 02:29 CEST
    assert not is_open(window, "Europe/Paris", "2026-10-25T00:30")  # 02:30 CEST
    assert is_open(window, "Europe/Paris", "2026-10-25T01:00")  # 02:00 CET, again
    assert not is_open(window, "Europe/Paris", "2026-10-25T01:30")  # 02:30 CET
    # New York, 1 November: 01:00-02:00 twice (05:00-06:00 and 06:00-07:00 UTC).
    assert is_open("01:00-01:30", "America/New_York", "2026-11-01T05:15")  # 01:15 EDT
    assert not is_open("01:00-01:30", "America/New_York", "2026-11-01T05:45")
    assert is_open("01:00-01:30", "America/New_York", "2026-11-01T06:15")  # 01:15 EST


def test_without_reader_time_every_reader_has_the_sites_clock(site):
    site.config["SEND_IN_READER_TIME"] = False
    # 09:00 in Tokyo, 02:00 in Paris (the site): shut for the Tokyo reader too.
    assert not is_open("08:00-20:00", "Asia/Tokyo", "2026-06-01T00:00")
    assert is_open("08:00-20:00", "Asia/Tokyo", "2026-06-01T06:00")  # 08:00 Paris
    site.config["SEND_IN_READER_TIME"] = True
    assert is_open("08:00-20:00", "Asia/Tokyo", "2026-06-01T00:00")


def test_no_window_is_open_at_every_hour(site):
    assert Window(Sequence(window_start=None, window_end=None),
                  datetime(2026, 6, 1, 3, tzinfo=UTC)).open_for("Asia/Tokyo")
