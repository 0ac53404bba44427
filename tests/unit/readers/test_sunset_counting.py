"""The sunset policy's counting rule: N delivered issues, all tracked, no human click."""

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.readers.sunset import Delivered, is_idle

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def weekly(count: int, tracked: bool = True) -> list[Delivered]:
    return [Delivered(T0 + timedelta(weeks=week), tracked) for week in range(count)]


def test_idle_after_n_tracked_issues_without_a_click():
    assert is_idle(weekly(3), None, 3)
    assert is_idle(weekly(5), None, 3)


def test_fewer_issues_than_n_is_not_idle():
    assert not is_idle(weekly(2), None, 3)
    assert not is_idle([], None, 1)


def test_a_human_click_in_the_window_saves_the_reader():
    window_start = T0 + timedelta(weeks=2)  # the third-last of five issues
    assert not is_idle(weekly(5), window_start, 3)
    assert not is_idle(weekly(5), T0 + timedelta(weeks=4, days=1), 3)


def test_a_click_before_the_window_does_not_count():
    assert is_idle(weekly(5), T0 + timedelta(weeks=2) - timedelta(seconds=1), 3)


def test_an_untracked_issue_in_the_window_means_no_judgement():
    issues = weekly(3) + [Delivered(T0 + timedelta(weeks=3), False)]
    assert not is_idle(issues, None, 3)
    # ... until N tracked issues have gone out after it
    issues += [Delivered(T0 + timedelta(weeks=week), True) for week in (4, 5, 6)]
    assert is_idle(issues, None, 3)


def test_issues_sent_before_tracking_never_count():
    assert not is_idle(weekly(10, tracked=False), None, 3)


def test_order_of_the_history_does_not_matter():
    assert is_idle(list(reversed(weekly(4))), None, 3)
    assert not is_idle(list(reversed(weekly(4))), T0 + timedelta(weeks=1), 3)


def test_off_is_never_idle():
    assert not is_idle(weekly(10), None, 0)


@pytest.mark.parametrize(("environ", "named"), [
    ({"NEWSLETTER_SUNSET_AFTER_ISSUES": "three"}, "NEWSLETTER_SUNSET_AFTER_ISSUES:"),
    ({"NEWSLETTER_SUNSET_AFTER_ISSUES": "-1"}, "NEWSLETTER_SUNSET_AFTER_ISSUES:"),
    ({"NEWSLETTER_SUNSET_GRACE_DAYS": "0"}, "NEWSLETTER_SUNSET_GRACE_DAYS:"),
    ({"NEWSLETTER_SUNSET_GRACE_DAYS": "2 weeks"}, "NEWSLETTER_SUNSET_GRACE_DAYS:"),
    ({"NEWSLETTER_SUNSET_AFTER_ISSUES": "4"}, "NEWSLETTER_TRACK_READERS=true"),
    ({"NEWSLETTER_SUNSET_AFTER_ISSUES": "4", "NEWSLETTER_TRACK_READERS": "true",
      "NEWSLETTER_TRACK_CLICKS": "false"}, "NEWSLETTER_TRACK_CLICKS=true"),
])
def test_bad_sunset_settings_refuse_start_naming_the_setting(environ, named):
    with pytest.raises(ConfigError) as error:
        load_settings(environ)
    lines = str(error.value).splitlines()[1:]
    assert len(lines) == 1 and named in lines[0]
    assert lines[0].strip().startswith(("NEWSLETTER_SUNSET_AFTER_ISSUES:",
                                        "NEWSLETTER_SUNSET_GRACE_DAYS:"))


def test_sunset_settings_default_off_and_parse():
    assert load_settings({})["SUNSET_AFTER_ISSUES"] == 0
    assert load_settings({})["SUNSET_GRACE_DAYS"] == 14
    settings = load_settings({"NEWSLETTER_SUNSET_AFTER_ISSUES": " 6 ",
                              "NEWSLETTER_TRACK_READERS": "true",
                              "NEWSLETTER_SUNSET_GRACE_DAYS": "10"})
    assert (settings["SUNSET_AFTER_ISSUES"], settings["SUNSET_GRACE_DAYS"]) == (6, 10)
