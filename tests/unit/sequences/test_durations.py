import pytest

from newsletter.sequences.durations import (
    MAX_SECONDS,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("0s", 0), ("30s", 30), ("10m", 600), ("2h", 7200), ("3d", 259200), (" 5M ", 300),
    ("366d", MAX_SECONDS),
])
def test_a_number_and_a_unit_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [
    "", "s", "10", "10x", "1.5h", "10 m", "1h30m", "ten minutes", "0x10s", "１０s",
    "10s\x00", "9" * 10 + "s", "367d",
])
def test_anything_else_is_refused(text):
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-1s", "-0m", " -3d"])
def test_a_negative_duration_is_refused_as_negative(text):
    with pytest.raises(DurationError, match="negative"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (120, "2m"),
                                               (7200, "2h"), (172800, "2d"), (90, "90s")])
def test_formatting_uses_the_largest_unit_that_divides(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
