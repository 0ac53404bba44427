"""Durations as editors write them: ``30s``, ``10m``, ``2h``, ``3d``."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 366 * 86400  # a step more than a year after entry is a typo
_DURATION = re.compile(r"([0-9]{1,9})([smhd])")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Seconds; DurationError (saying what is wrong) for anything else."""
    value = (text or "").strip().lower()
    if value.startswith("-"):
        raise DurationError(f"The duration {text!r} is negative; a step is sent after the "
                            "reader enters, never before.")
    match = _DURATION.fullmatch(value)
    if match is None:
        raise DurationError(f"The duration {text!r} is not a number and a unit, like 30s, "
                            "10m, 2h or 3d.")
    seconds = int(match[1]) * UNITS[match[2]]
    if seconds > MAX_SECONDS:
        raise DurationError(f"The duration {text!r} is more than 366 days.")
    return seconds


def format_duration(seconds: int) -> str:
    """The largest unit that divides it: 90 -> 90s, 7200 -> 2h."""
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "0s"
