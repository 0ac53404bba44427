"""The weekly and daily schedules: when digests go out, and which period a moment belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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
    return WeeklySchedule(day, *_clock(clock), _zone(zone))


@dataclass(frozen=True)
class DailySchedule:
    hour: int
    minute: int
    timezone: ZoneInfo


def parse_daily_schedule(text: str) -> DailySchedule:
    parts = str(text).split()
    if len(parts) != 2:
        raise ValueError(f"expected 'HH:MM TIMEZONE' such as '07:00 Europe/London', got {text!r}")
    return DailySchedule(*_clock(parts[0]), _zone(parts[1]))


def _clock(clock: str) -> tuple[int, int]:
    try:
        hour, minute = (int(piece) for piece in clock.split(":"))
    except ValueError:
        raise ValueError(f"time must be HH:MM, got {clock!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"time must be between 00:00 and 23:59, got {clock!r}")
    return hour, minute


def _zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {zone!r}") from None


def period_key(moment: datetime, schedule: WeeklySchedule) -> str:
    """The ISO week of ``moment`` in the schedule's timezone: one digest per key."""
    year, week, _ = moment.astimezone(schedule.timezone).isocalendar()
    return f"weekly-{year}-W{week:02d}"


# A trigger that runs up to this much before its time (clocks of the beat and worker
# hosts disagree) still belongs to that time, not to the week before.
EARLY_GRACE = timedelta(minutes=15)


def last_scheduled(moment: datetime, schedule: WeeklySchedule) -> datetime:
    """The latest scheduled time at or before ``moment`` (+ EARLY_GRACE), in the
    schedule's timezone: the occurrence a trigger running at ``moment`` stands for."""
    local = (moment + EARLY_GRACE).astimezone(schedule.timezone)
    days_back = (local.weekday() - DAYS.index(schedule.day)) % 7
    day = local.date() - timedelta(days=days_back)
    at = time(schedule.hour, schedule.minute)
    occurrence = datetime.combine(day, at, tzinfo=schedule.timezone)
    if occurrence > local:  # same weekday, later today: it is last week's
        occurrence = datetime.combine(day - timedelta(days=7), at, tzinfo=schedule.timezone)
    return occurrence


class LocalTimeError(ValueError):
    """A date and time an editor typed that name no moment in the newsletter's zone."""


def local_to_utc(day: str, clock: str, zone: ZoneInfo) -> datetime:
    """``2026-03-29`` and ``10:00`` in ``zone`` as a UTC instant.

    A time the clocks skip (02:30 on the night summer time starts in Berlin) is an
    error, not a guess. A time they pass twice (02:30 on the night it ends) is the
    first pass, the earlier instant: the issue never goes out an hour late.
    """
    try:
        on = date.fromisoformat(day.strip())
        hour, minute = (int(part) for part in clock.strip().split(":"))
        at = time(hour, minute)
    except ValueError:
        raise LocalTimeError("Enter the date as YYYY-MM-DD and the time as HH:MM "
                             "(24-hour clock).") from None
    local = datetime.combine(on, at, tzinfo=zone)  # fold=0: the first of two passes
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise LocalTimeError(f"{on:%d %b %Y} {at:%H:%M} does not exist in {zone.key}: the "
                             f"clocks skip it. Choose another time.")
    return instant


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """How every page shows a moment: in the newsletter's zone, with the zone named."""
    return f"{moment.astimezone(zone):%d %b %Y %H:%M} {zone.key}"
def last_daily(moment: datetime, schedule: DailySchedule) -> datetime:
    """The latest daily time at or before ``moment`` (+ EARLY_GRACE), in its timezone."""
    local = (moment + EARLY_GRACE).astimezone(schedule.timezone)
    at = time(schedule.hour, schedule.minute)
    occurrence = datetime.combine(local.date(), at, tzinfo=schedule.timezone)
    if occurrence > local:
        occurrence = datetime.combine(local.date() - timedelta(days=1), at,
                                      tzinfo=schedule.timezone)
    return occurrence


def daily_key(occurrence: datetime, schedule: DailySchedule) -> str:
    """One daily issue per local date: ``daily-2026-12-01``."""
    return f"daily-{occurrence.astimezone(schedule.timezone).date().isoformat()}"
