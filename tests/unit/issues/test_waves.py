"""Reader time's arithmetic: each zone's moment for a wall time, across both DST changes,
and the trigger that starts an issue when its wall time first comes anywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter.issues import waves
from newsletter.issues.schedule import last_scheduled, parse_schedule, period_key

TOKYO, PARIS, NEW_YORK = (ZoneInfo(name) for name in
                          ("Asia/Tokyo", "Europe/Paris", "America/New_York"))


@pytest.mark.parametrize("monday, tokyo, paris, new_york", [
    # Winter everywhere (Tokyo has no DST).
    ("2026-03-02", "2026-03-01 23:00", "2026-03-02 07:00", "2026-03-02 13:00"),
    # New York is on summer time (since 8 March), Paris not yet (29 March).
    ("2026-03-09", "2026-03-08 23:00", "2026-03-09 07:00", "2026-03-09 12:00"),
    # Both on summer time.
    ("2026-03-30", "2026-03-29 23:00", "2026-03-30 06:00", "2026-03-30 12:00"),
    # Paris back on winter time (25 October), New York not yet (1 November).
    ("2026-10-26", "2026-10-25 23:00", "2026-10-26 07:00", "2026-10-26 12:00"),
    # Both on winter time again.
    ("2026-11-02", "2026-11-01 23:00", "2026-11-02 07:00", "2026-11-02 13:00"),
])
def test_eight_oclock_in_each_zone(monday, tokyo, paris, new_york):
    wall = f"{monday}T08:00"
    for zone, expected in ((TOKYO, tokyo), (PARIS, paris), (NEW_YORK, new_york)):
        moment = waves.moment_in(wall, zone)
        assert f"{moment:%Y-%m-%d %H:%M}" == expected, zone
        assert f"{moment.astimezone(zone):%Y-%m-%d %H:%M}" == f"{monday} 08:00"


def test_a_wall_time_the_clocks_skip_is_shifted_forward():
    # 02:30 does not exist in Paris on 29 March 2026: it goes out at 03:30 CEST.
    moment = waves.moment_in("2026-03-29T02:30", PARIS)
    assert moment == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert f"{moment.astimezone(PARIS):%H:%M %Z}" == "03:30 CEST"
    # New York, 8 March 2026.
    assert f"{waves.moment_in('2026-03-08T02:15', NEW_YORK).astimezone(NEW_YORK):%H:%M}" == "03:15"


def test_a_wall_time_the_clocks_pass_twice_is_the_first_pass():
    moment = waves.moment_in("2026-10-25T02:30", PARIS)
    assert moment == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET
    assert waves.moment_in("2026-11-01T01:30", NEW_YORK) == datetime(2026, 11, 1, 5, 30,
                                                                       tzinfo=UTC)


def test_the_issue_starts_when_the_wall_time_first_comes_anywhere():
    assert waves.first_moment("2026-03-30T08:00") == datetime(2026, 3, 29, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize("now, expected_key", [
    # Sunday 17:40 UTC: Monday 07:40 at UTC+14, within the trigger's early grace.
    (datetime(2026, 3, 29, 17, 50, tzinfo=UTC), "weekly-2026-W14"),
    (datetime(2026, 3, 29, 17, 40, tzinfo=UTC), "weekly-2026-W13"),  # still last week's
    (datetime(2026, 3, 30, 12, 0, tzinfo=UTC), "weekly-2026-W14"),
])
def test_the_trigger_stands_for_the_occurrence_that_has_come_somewhere(now, expected_key):
    schedule = parse_schedule("mon 08:00 Europe/Paris")
    occurrence = last_scheduled(waves.as_earliest_wall(now, schedule.timezone), schedule)
    assert period_key(occurrence, schedule) == expected_key


def test_waves_are_computed_once_per_zone_and_default_to_the_schedules_zone():
    computed = waves.Waves("2026-03-30T08:00", PARIS)
    assert computed.not_before(None) == computed.not_before("Europe/Paris")
    assert computed.not_before("Nowhere/Lost") == computed.not_before(None)
    assert computed.not_before("Asia/Tokyo") == datetime(2026, 3, 29, 23, 0, tzinfo=UTC)
    assert waves.Waves(None, PARIS).not_before("Asia/Tokyo") is None
