"""NEWSLETTER_SMTP_RELAYS: a JSON list of relays, every mistake refused at start with
one line naming the setting, and no password in any message."""

from __future__ import annotations

import json

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.mail.relays import RelaySpec, relays_from_config


def relays(value) -> tuple[RelaySpec, ...]:
    text = value if isinstance(value, str) else json.dumps(value)
    return load_settings({"NEWSLETTER_SMTP_RELAYS": text})["SMTP_RELAYS"]


def test_a_pool_of_two_relays():
    pool = relays([{"host": "smtp-a.example.com", "port": 587, "security": "starttls",
                    "username": "u", "password": "hunter2-secret", "weight": 3, "rate": 20},
                   {"host": "smtp-b.example.com", "name": "backup", "weight": 0.5}])
    assert [relay.name for relay in pool] == ["smtp-a.example.com:587", "backup"]
    assert pool[0].weight == 3 and pool[0].rate == 20 and pool[0].security == "starttls"
    assert pool[1].port == 25 and pool[1].rate is None and pool[1].security == "none"
    assert "hunter2" not in repr(pool)


def test_without_a_pool_the_smtp_settings_make_the_one_relay():
    config = load_settings({"NEWSLETTER_SMTP_HOST": "relay.example.com",
                            "NEWSLETTER_SMTP_PORT": "2525"})
    [relay] = relays_from_config(config)
    assert (relay.name, relay.host, relay.port, relay.weight) == (
        "relay.example.com:2525", "relay.example.com", 2525, 1.0)


@pytest.mark.parametrize("value, reason", [
    ("[{'host': 'a'}]", "not valid JSON"),
    ('{"host": "a"}', "expected a JSON list"),
    ("[]", "expected a JSON list"),
    ('["smtp.example.com"]', "relay 1 is not a JSON object"),
    ([{"port": 25}], "relay 1 has no host"),
    ([{"host": "  "}], "relay 1 has no host"),
    ([{"host": "a.example"}, {"host": "b.example", "weight": 0}], "relay 2: weight"),
    ([{"host": "a.example", "weight": -1}], "weight must be a number above 0"),
    ([{"host": "a.example", "weight": "2"}], "weight must be a number above 0"),
    ([{"host": "a.example", "weight": float("nan")}], "weight must be a number above 0"),
    ([{"host": "a.example", "security": "tls"}], "unknown security mode 'tls'"),
    ([{"host": "a.example", "port": 70000}], "port must be"),
    ([{"host": "a.example", "port": "25"}], "port must be"),
    ([{"host": "a.example", "rate": 0}], "rate must be a number above 0"),
    ([{"host": "a.example", "pasword": "x"}], "unknown field 'pasword'"),
    ([{"host": "a.example"}, {"host": "a.example"}], "two relays are named"),
])
def test_a_bad_relay_list_is_refused_naming_the_setting(value, reason):
    with pytest.raises(ConfigError) as error:
        relays(value)
    [line] = [line for line in str(error.value).splitlines() if "SMTP_RELAYS" in line]
    assert line.strip().startswith("NEWSLETTER_SMTP_RELAYS:") and reason in line


def test_a_refusal_never_quotes_a_password():
    with pytest.raises(ConfigError) as error:
        relays([{"host": "a.example", "password": "hunter2-secret", "security": "bogus"}])
    assert "hunter2" not in str(error.value)
