"""The human-or-bot verdict from what one request shows."""

from __future__ import annotations

import pytest

from newsletter.analytics import verdict
from newsletter.models import Verdict

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.2 Safari/605.1.15")


@pytest.mark.parametrize("method, agent, address, reason", [
    ("HEAD", BROWSER, "203.0.113.9", "head"),
    ("GET", "", "203.0.113.9", "no user agent"),
    ("GET", "python-requests/2.31", "203.0.113.9", "user agent"),
    ("GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", "203.0.113.9", "user agent"),
    ("GET", "Mozilla/5.0 (compatible; Googlebot/2.1)", "203.0.113.9", "user agent"),
    ("GET", BROWSER, "40.107.1.2", "scanner network"),
    ("GET", BROWSER, "148.163.130.1", "scanner network"),
])
def test_scanners_are_bots(method, agent, address, reason):
    assert verdict.judge_click(method, agent, address, 600) == verdict.Judged(Verdict.BOT,
                                                                              reason)


def test_a_click_within_seconds_of_sending_is_a_bot_and_later_a_person():
    assert verdict.judge_click("GET", BROWSER, "203.0.113.9", 1).reason == "too soon"
    assert verdict.judge_click("GET", BROWSER, "203.0.113.9", 45).verdict is Verdict.HUMAN
    assert verdict.judge_click("GET", BROWSER, None, 45).verdict is Verdict.HUMAN


def test_opens_by_proxies_are_apart_from_people_and_bots():
    assert verdict.judge_open("GET", "Mozilla/5.0", "17.58.1.1").verdict is Verdict.PROXY
    assert verdict.judge_open(
        "GET", "Mozilla/5.0 (via ggpht.com GoogleImageProxy)", "66.1.1.1").verdict \
        is Verdict.PROXY
    assert verdict.judge_open("GET", "curl/8", "198.51.100.1").verdict is Verdict.BOT
    assert verdict.judge_open("GET", BROWSER, "198.51.100.1").verdict is Verdict.HUMAN


def test_the_shipped_network_list_parses_and_a_bad_line_is_named():
    assert len(verdict.scanner_networks()) >= 10
    with pytest.raises(ValueError, match="line 2: not a network: '10.0.0.300/8'"):
        verdict.load_networks("# comment\n10.0.0.300/8\n")


def test_a_scanner_network_holds_its_first_and_last_address_and_nothing_either_side():
    for network in verdict.scanner_networks():
        first, last = network.network_address, network.broadcast_address
        assert verdict.in_scanner_network(str(first)) and verdict.in_scanner_network(str(last))
        for outside in (first - 1, last + 1):
            expected = any(outside in other for other in verdict.scanner_networks())
            assert verdict.in_scanner_network(str(outside)) is expected, outside
    for address in ("2001:db8::1", "::ffff:203.0.113.9", "", None, "not an address",
                    "203.0.113.9%eth0"):
        assert verdict.in_scanner_network(address) is False
