"""Scheduling in the newsletter's zone: a typed local time becomes one UTC instant."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter.issues.schedule import LocalTimeError, local_time, local_to_utc

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("day", "clock", "instant"), [
    # Winter time (UTC+1) before the change on 29 Mar 2026, summer time (UTC+2) after.
    ("2026-03-28", "10:00", datetime(2026, 3, 28, 9, 0, tzinfo=UTC)),
    ("2026-03-30", "10:00", datetime(2026, 3, 30, 8, 0, tzinfo=UTC)),
    ("2026-03-29", "01:59", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),
    ("2026-03-29", "03:00", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    # 02:30 on 25 Oct 2026 happens twice: the first pass (still summer time, UTC+2).
    ("2026-10-25", "02:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ("2026-10-25", "03:00", datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    (" 2026-12-01 ", " 8:05 ", datetime(2026, 12, 1, 7, 5, tzinfo=UTC)),
])
def test_local_time_to_utc_across_the_changes(day, clock, instant):
    assert local_to_utc(day, clock, BERLIN) == instant


def test_a_skipped_local_time_is_a_clear_error():
    with pytest.raises(LocalTimeError, match="29 Mar 2026 02:30 does not exist in Europe/Berlin"):
        local_to_utc("2026-03-29", "02:30", BERLIN)


@pytest.mark.parametrize(("day", "clock"), [
    ("", ""), ("03/29/2026", "10:00"), ("2026-02-30", "10:00"), ("2026-03-29", "24:00"),
    ("2026-03-29", "10"), ("2026-03-29", "10:00:00"), ("2026-03-29", "ten"),
    ("9" * 5000, "10:00"),
])
def test_malformed_dates_and_times_say_the_format(day, clock):
    with pytest.raises(LocalTimeError, match="YYYY-MM-DD"):
        local_to_utc(day, clock, BERLIN)


def test_shown_back_in_the_zone_as_typed():
    instant = local_to_utc("2026-03-30", "10:00", BERLIN)
    assert local_time(instant, BERLIN) == "30 Mar 2026 10:00 Europe/Berlin"
    assert local_time(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), BERLIN) == (
        "25 Oct 2026 02:30 Europe/Berlin")
