"""The weekly schedule: when the digest goes out, and which period a moment belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WeeklySchedule:
    day: str  # "mon" .. "sun"
    hour: int
    minute: int
    timezone: ZoneInfo


def parse_schedule(text: str) -> WeeklySchedule:
    parts = str(text).split()
    if len(parts) != 3:
        raise ValueError(f"expected 'DAY HH:MM TIMEZONE' such as 'mon 08:00 Europe/London', "
                         f"got {text!r}")
    day, clock, zone = parts
    day = day.lower()[:3]
    if day not in DAYS:
        raise ValueError(f"day must be one of {', '.join(DAYS)}, got {parts[0]!r}")
    try:
        hour, minute = (int(piece) for piece in clock.split(":"))
    except ValueError:
        raise ValueError(f"time must be HH:MM, got {clock!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"time must be between 00:00 and 23:59, got {clock!r}")
    try:
        timezone = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {zone!r}") from None
    return WeeklySchedule(day, hour, minute, timezone)


def period_key(moment: datetime, schedule: WeeklySchedule) -> str:
    """The ISO week of ``moment`` in the schedule's timezone: one digest per key."""
    year, week, _ = moment.astimezone(schedule.timezone).isocalendar()
    return f"weekly-{year}-W{week:02d}"
