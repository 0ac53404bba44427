"""Bounce, webhook and guard settings: bad values stop the app, naming the variable."""

import pytest

from newsletter.config import ConfigError, load_settings


def test_good_values():
    settings = load_settings({
        "NEWSLETTER_BOUNCE_DOMAIN": "Bounces.Example.com.",
        "NEWSLETTER_BOUNCE_IMAP_URL": "imaps://u:p%40ss@imap.example.com/INBOX?processed=Done",
        "NEWSLETTER_WEBHOOK_SNS_TOPIC_ARNS": "arn:a, arn:b",
        "NEWSLETTER_GUARD_MAX_COMPLAINT_PERCENT": "0.3",
    })
    assert settings["BOUNCE_DOMAIN"] == "bounces.example.com"
    assert settings["WEBHOOK_SNS_TOPIC_ARNS"] == ("arn:a", "arn:b")
    assert settings["GUARD_MAX_COMPLAINT_PERCENT"] == 0.3


@pytest.mark.parametrize("name, value", [
    ("BOUNCE_DOMAIN", "not a domain"), ("BOUNCE_DOMAIN", "localhost"),
    ("BOUNCE_IMAP_URL", "http://example.com/"), ("BOUNCE_IMAP_URL", "imaps://host-only/"),
    ("GUARD_MAX_HARD_BOUNCE_PERCENT", "0"),
    ("GUARD_MAX_COMPLAINT_PERCENT", "lots"), ("BOUNCE_MAX_SIZE", "5"),
    ("BOUNCE_PARKED_KEEP_BYTES", "100"), ("BOUNCE_PARKED_KEEP_BYTES", "4k"),
    ("BOUNCE_PARKED_RETENTION_DAYS", "0"), ("BOUNCE_TOKENLESS_PER_CLIENT_PER_DAY", "-1"),
    ("BOUNCE_TOKENLESS_PER_DAY", "many"),
])
def test_bad_values_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=f"NEWSLETTER_{name}"):
        load_settings({f"NEWSLETTER_{name}": value})
