"""Quiet hours: a sequence's send window, such as 08:00-20:00.

A step due outside the window waits until it opens. The window is read on the
reader's clock when NEWSLETTER_SEND_IN_READER_TIME is on (readers without a zone, or
with one the zone database lost: the site's), on the site's clock (the zone of
NEWSLETTER_DIGEST_SCHEDULE) otherwise.

The question each run asks is "what does the clock read now?", so daylight saving
needs no special case: a window opening at 02:30 on the night the clocks skip from
02:00 to 03:00 opens at 03:00 (the first moment the clock reads past 02:30), and in
the hour the clocks repeat, the clock reads each minute twice and the window is open
(or shut) both times, as a reader would expect of their own clock.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app

from newsletter.issues.schedule import parse_schedule
from newsletter.issues.waves import zone_of
from newsletter.models import Sequence

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_WINDOW = re.compile(r"\s*(\S+)\s*[-–]\s*(\S+)\s*")


class WindowError(ValueError):
    """A send window that cannot be read; the message says what to write."""


def _minutes(text: str) -> int:
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise WindowError(f"{text[:20]!r} is not a time of day: write HH:MM, such as 08:00.")
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_window(text: str | None) -> tuple[int, int] | None:
    """"08:00-20:00" -> (480, 1200), minutes after midnight; empty: no window (any
    hour). The window is one stretch of a day: it must end after it starts."""
    if not (text or "").strip():
        return None
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise WindowError("A send window is two times of day, such as 08:00-20:00.")
    start, end = _minutes(match.group(1)), _minutes(match.group(2))
    if end <= start:
        raise WindowError(f"The send window ends ({match.group(2)}) before it starts "
                          f"({match.group(1)}): a window is one stretch of a day, such as "
                          "08:00-20:00.")
    return start, end


def format_window(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return ""
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def site_zone() -> ZoneInfo:
    return parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone


class Window:
    """Whether a sequence's window is open now, for readers of each zone (each zone
    looked at once per run)."""

    def __init__(self, sequence: Sequence, now: datetime):
        self.start, self.end, self.now = sequence.window_start, sequence.window_end, now
        self.site = site_zone()
        self.in_reader_time = bool(current_app.config["SEND_IN_READER_TIME"])
        self._open: dict[str | None, bool] = {}

    def open_for(self, zone_name: str | None) -> bool:
        if self.start is None or self.end is None:
            return True
        key = zone_name if self.in_reader_time else None
        if key not in self._open:
            local = self.now.astimezone(zone_of(key, self.site))
            self._open[key] = self.start <= local.hour * 60 + local.minute < self.end
        return self._open[key]
