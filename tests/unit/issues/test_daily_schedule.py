"""The daily schedule: its setting, the occurrence a trigger stands for, its key, the beat."""

import pickle
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.issues.schedule import daily_key, last_daily, parse_daily_schedule

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(("runs_at", "key"), [
    (datetime(2026, 12, 1, 7, 0, tzinfo=LONDON), "daily-2026-12-01"),
    (datetime(2026, 12, 1, 6, 50, tzinfo=LONDON), "daily-2026-12-01"),  # a little early
    (datetime(2026, 12, 1, 6, 0, tzinfo=LONDON), "daily-2026-11-30"),  # hours early: yesterday's
    (datetime(2026, 12, 2, 0, 30, tzinfo=LONDON), "daily-2026-12-01"),  # late, after midnight
    # 07:00 London in summer is 06:00 UTC: the key is the London date.
    (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), "daily-2026-07-01"),
])
def test_a_daily_trigger_keys_on_the_day_it_stands_for(runs_at, key):
    schedule = parse_daily_schedule("07:00 Europe/London")
    assert daily_key(last_daily(runs_at, schedule), schedule) == key


def test_daily_schedule_setting_is_empty_by_default_and_checked():
    assert load_settings({})["DAILY_SCHEDULE"] == ""
    assert load_settings({"NEWSLETTER_DAILY_SCHEDULE": " 07:00   Europe/London "})[
        "DAILY_SCHEDULE"] == "07:00 Europe/London"
    for bad in ("7am", "25:00 UTC", "07:00 Mars/Olympus", "mon 07:00 UTC"):
        with pytest.raises(ConfigError, match="NEWSLETTER_DAILY_SCHEDULE:"):
            load_settings({"NEWSLETTER_DAILY_SCHEDULE": bad})


def test_the_beat_runs_the_daily_digest_only_when_scheduled_in_its_own_zone():
    from newsletter import create_app

    config = {"TESTING": True, "SECRET_KEY": "k" * 32, "DATABASE_URL": "sqlite://"}
    weekly_only = create_app(config).extensions["celery"].conf.beat_schedule
    assert "daily-digest" not in weekly_only
    both = create_app({**config, "DAILY_SCHEDULE": "07:00 Asia/Tokyo",
                       "DIGEST_SCHEDULE": "mon 08:00 Europe/London"})
    entry = both.extensions["celery"].conf.beat_schedule["daily-digest"]
    assert entry["task"] == "workers.tasks.send_daily_digest"
    schedule = pickle.loads(pickle.dumps(entry["schedule"]))  # as the beat keeps it
    schedule.app = both.extensions["celery"]
    # Last run at 07:00 Tokyo (22:00 UTC): next at 07:00 Tokyo, 24 hours on, whatever
    # the beat's own zone (London).
    last_run = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    last, step, _ = schedule.remaining_delta(last_run)
    assert (last + step).astimezone(ZoneInfo("Asia/Tokyo")) == datetime(
        2026, 12, 3, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
