"""Which addresses a feed fetch may reach, and the feed settings."""

import ipaddress

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.content.feeds import FetchPolicy, address_allowed, is_public_address

REFUSED = [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:100.64.0.1",
    "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34",
          "64:ff9b::5db8:d822"]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_not_public(address):
    assert not is_public_address(ipaddress.ip_address(address))
    assert not address_allowed(ipaddress.ip_address(address), FetchPolicy())


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address):
    assert is_public_address(ipaddress.ip_address(address))


def test_allowed_networks_exempt_only_themselves():
    policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
    assert address_allowed(ipaddress.ip_address("127.0.0.2"), policy)
    assert not address_allowed(ipaddress.ip_address("127.0.0.1"), policy)
    assert not address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), policy)


def test_feed_settings_default_to_https_public_and_bounded():
    settings = load_settings({})
    assert settings["FEED_ALLOW_HTTP"] is False and settings["FEED_ALLOWED_NETWORKS"] == ()
    assert settings["FEED_FETCH_DEADLINE"] == 30 and settings["FEED_MAX_BYTES"] == 10 * 2**20
    parsed = load_settings({"NEWSLETTER_FEED_ALLOWED_NETWORKS": "127.0.0.2/32, 10.1.0.0/16",
                            "NEWSLETTER_FEED_FETCH_DEADLINE": "2.5",
                            "NEWSLETTER_FEED_ALLOW_HTTP": "true"})
    assert [str(n) for n in parsed["FEED_ALLOWED_NETWORKS"]] == ["127.0.0.2/32", "10.1.0.0/16"]
    assert parsed["FEED_FETCH_DEADLINE"] == 2.5 and parsed["FEED_ALLOW_HTTP"] is True


@pytest.mark.parametrize("name, value", [
    ("FEED_ALLOWED_NETWORKS", "intranet"), ("FEED_ALLOWED_NETWORKS", "10.0.0.1/8"),
    ("FEED_FETCH_DEADLINE", "0"), ("FEED_FETCH_DEADLINE", "3600"),
    ("FEED_MAX_BYTES", "10"), ("FEED_ALLOW_HTTP", "maybe"),
    ("LIST_ID", "<a.example>\r\nBcc: x@evil.example"), ("LIST_ID", "=?utf-8?q?x?="),
])
def test_bad_feed_and_header_settings_stop_the_start(name, value):
    with pytest.raises(ConfigError, match=f"NEWSLETTER_{name}"):
        load_settings({f"NEWSLETTER_{name}": value})


def test_a_plain_http_feed_needs_the_explicit_setting():
    with pytest.raises(ConfigError, match="NEWSLETTER_FEEDS: http://news.example.com/rss is not"):
        load_settings({"NEWSLETTER_FEEDS": "https://a.example/feed, http://news.example.com/rss"})
    allowed = load_settings({"NEWSLETTER_FEEDS": "http://news.example.com/rss",
                             "NEWSLETTER_FEED_ALLOW_HTTP": "yes"})
    assert allowed["FEEDS"] == ("http://news.example.com/rss",)
