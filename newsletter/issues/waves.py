"""Reader time: one issue reaching every reader at the same local hour, in waves.

With NEWSLETTER_SEND_IN_READER_TIME an issue carries a local wall time (the
schedule's day and hour, "2026-03-30T08:00"). Each of its ledger rows gets the
moment that wall time comes in the reader's zone (``not_before``; readers without a
zone: the schedule's), and a batch claims only rows whose moment has come: one
issue, one ledger, sent in waves by zone. The sweeper (every 15 s) starts the
batches of each wave as it falls due.

The issue itself is composed and started when the wall time first comes anywhere on
Earth (UTC+14), so no zone's wave is ever late.

DST, on send day: a wall time the reader's clocks skip (02:30 on the night summer
time starts) is taken with the offset before the change, which lands it the length
of the gap later (03:30): shifted forward, never dropped. A wall time the clocks pass
twice (02:30 on the night it ends) is the first pass (fold=0).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.issues.schedule import parse_schedule
from newsletter.models import Delivery

# The first zone to reach any wall time: Line Islands, UTC+14.
EARLIEST = timezone(timedelta(hours=14))
WALL_FORMAT = "%Y-%m-%dT%H:%M"
# How long before its time in the newsletter's zone an issue may start (UTC+14 against
# UTC-12, the widest span).
MAX_LEAD = timedelta(hours=27)


def wall_time(moment: datetime, zone: ZoneInfo) -> str:
    """``moment``'s wall time in ``zone``, as an issue stores it."""
    return moment.astimezone(zone).strftime(WALL_FORMAT)


def scheduled_wall_time(send_at: datetime) -> str | None:
    """An issue scheduled by hand: in reader time, the time typed in the newsletter's
    zone is that wall time in every reader's zone; None when reader time is off."""
    if not current_app.config["SEND_IN_READER_TIME"]:
        return None
    return wall_time(send_at, parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone)


def parse_wall(text: str) -> datetime:
    """A stored wall time, naive."""
    return datetime.strptime(text, WALL_FORMAT)


def moment_in(wall: str, zone: ZoneInfo) -> datetime:
    """When the wall time comes in ``zone``, in UTC: skipped times shifted forward,
    repeated ones the first pass (see the module's docstring)."""
    return parse_wall(wall).replace(tzinfo=zone, fold=0).astimezone(UTC)


def first_moment(wall: str) -> datetime:
    """When the wall time first comes anywhere: the issue starts then."""
    return parse_wall(wall).replace(tzinfo=EARLIEST).astimezone(UTC)


def as_earliest_wall(now: datetime, zone: ZoneInfo) -> datetime:
    """``now`` as the wall clock of the earliest zone reads it, put in ``zone``: a
    schedule occurrence at or before this has come somewhere on Earth."""
    return now.astimezone(EARLIEST).replace(tzinfo=zone)


def zone_of(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """A reader's zone; the default for none (or one the zone database lost)."""
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return default


class Waves:
    """Each reader's moment for one issue, computed once per zone."""

    def __init__(self, wall: str | None, default: ZoneInfo):
        self.wall, self.default = wall, default
        self._by_zone: dict[str | None, datetime | None] = {}

    def not_before(self, zone_name: str | None) -> datetime | None:
        if self.wall is None:
            return None
        if zone_name not in self._by_zone:
            self._by_zone[zone_name] = moment_in(self.wall, zone_of(zone_name, self.default))
        return self._by_zone[zone_name]


def waves_of(digest_id: int) -> list[tuple[datetime | None, dict[str, int]]]:
    """The issue's rows by wave (its moment; None: not in reader time), counted by
    status, earliest first: what the report shows."""
    found: dict[datetime | None, dict[str, int]] = defaultdict(dict)
    for moment, status, count in db.session.execute(
        select(Delivery.not_before, Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.not_before, Delivery.status)
    ):
        found[moment][status.value] = count
    return sorted(found.items(), key=lambda item: (item[0] is not None, item[0]))
