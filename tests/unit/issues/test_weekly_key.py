"""The weekly trigger keys on the scheduled time it stands for, not on when it runs."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.issues.schedule import last_scheduled, parse_schedule, period_key

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(("runs_at", "stands_for"), [
    # Sunday 23:59 trigger that runs two minutes late, after midnight: Sunday's week.
    (datetime(2026, 11, 30, 0, 1, tzinfo=PARIS), datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)),
    (datetime(2026, 11, 29, 23, 59, tzinfo=PARIS), datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)),
    # A few minutes early (the worker's clock is behind the beat's): still this Sunday.
    (datetime(2026, 11, 29, 23, 50, tzinfo=PARIS), datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)),
    # Hours early is not this week's trigger: it stands for last Sunday.
    (datetime(2026, 11, 29, 12, 0, tzinfo=PARIS), datetime(2026, 11, 22, 23, 59, tzinfo=PARIS)),
    # Days late (beat was down): still the Sunday it was meant for.
    (datetime(2026, 12, 2, 9, 0, tzinfo=PARIS), datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)),
    # Given in UTC: Monday 00:01 Paris is Sunday 23:01 UTC.
    (datetime(2026, 11, 29, 23, 1, tzinfo=UTC), datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)),
    # The night the clocks go back (25 Oct 2026 in Paris).
    (datetime(2026, 10, 26, 0, 1, tzinfo=PARIS), datetime(2026, 10, 25, 23, 59, tzinfo=PARIS)),
])
def test_last_scheduled_time(runs_at, stands_for):
    schedule = parse_schedule("sun 23:59 Europe/Paris")
    assert last_scheduled(runs_at, schedule) == stands_for


def test_the_sunday_2359_trigger_run_at_0001_keys_on_sundays_week():
    schedule = parse_schedule("sun 23:59 Europe/Paris")
    sunday = datetime(2026, 11, 29, 23, 59, tzinfo=PARIS)
    late = sunday + timedelta(minutes=2)  # Monday 00:01: ISO week 49 already
    assert period_key(late, schedule) == "weekly-2026-W49"  # what keying on "now" gave
    assert period_key(last_scheduled(late, schedule), schedule) == "weekly-2026-W48"
    next_sunday = sunday + timedelta(days=7)
    assert period_key(last_scheduled(next_sunday, schedule), schedule) == "weekly-2026-W49"


def test_every_minute_of_a_week_maps_to_one_of_two_occurrences():
    schedule = parse_schedule("mon 08:00 UTC")
    start = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
    seen = {last_scheduled(start + timedelta(minutes=m), schedule) for m in range(0, 7 * 1440, 7)}
    assert seen == {datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
                    datetime(2026, 11, 30, 8, 0, tzinfo=UTC)}
