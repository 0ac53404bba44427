import pytest

from newsletter.config import ConfigError, load_settings
from tests.helpers import private_ca


def test_defaults_need_no_environment():
    settings = load_settings({})
    assert settings["SMTP_SECURITY"] == "none"
    assert settings["CONFIRM_MAX_AGE"] == 7 * 24 * 3600
    assert settings["CORS_ORIGINS"] == ()


def test_environment_values_are_parsed():
    settings = load_settings({
        "NEWSLETTER_SMTP_PORT": "587",
        "NEWSLETTER_SMTP_SECURITY": "STARTTLS",
        "NEWSLETTER_BASE_URL": "https://news.example.com/",
        "NEWSLETTER_CORS_ORIGINS": "https://a.example, https://b.example/",
        "NEWSLETTER_MAIL_FROM": "The Daily <news@example.com>",
    })
    assert settings["SMTP_PORT"] == 587
    assert settings["SMTP_SECURITY"] == "starttls"
    assert settings["BASE_URL"] == "https://news.example.com"
    assert settings["CORS_ORIGINS"] == ["https://a.example", "https://b.example"]


def test_every_bad_value_is_reported_by_name():
    with pytest.raises(ConfigError) as error:
        load_settings({
            "NEWSLETTER_SMTP_PORT": "twenty-five",
            "NEWSLETTER_SMTP_SECURITY": "tls-please",
            "NEWSLETTER_BASE_URL": "news.example.com",
            "NEWSLETTER_REDIS_URL": "localhost:6379",
            "NEWSLETTER_CONFIRM_MAX_AGE": "5",
            "NEWSLETTER_MAIL_FROM": "News <news@example.com>\r\nBcc: x@example.com",
            "NEWSLETTER_SUBSCRIBE_RATE_LIMIT": "lots per minute",
        })
    message = str(error.value)
    for name in ["SMTP_PORT", "SMTP_SECURITY", "BASE_URL", "REDIS_URL", "CONFIRM_MAX_AGE",
                 "MAIL_FROM", "SUBSCRIBE_RATE_LIMIT"]:
        assert f"NEWSLETTER_{name}:" in message


def test_fallbacks_are_a_comma_separated_list():
    settings = load_settings({"NEWSLETTER_SECRET_KEY_FALLBACKS": " a" * 1 + ", b ,,"})
    assert settings["SECRET_KEY_FALLBACKS"] == ["a", "b"]
    assert load_settings({})["SECRET_KEY_FALLBACKS"] == []


def test_embed_origins_are_star_or_plain_origins():
    assert load_settings({})["EMBED_ORIGINS"] == ("*",)
    settings = load_settings({"NEWSLETTER_EMBED_ORIGINS": "https://a.example, https://b.example:8443/"})
    assert settings["EMBED_ORIGINS"] == ("https://a.example", "https://b.example:8443")
    for bad in ["a.example", "https://a.example/path", "https://a.example; script-src *",
                "javascript:alert(1)", "", "https://a.example'"]:
        with pytest.raises(ConfigError, match="NEWSLETTER_EMBED_ORIGINS"):
            load_settings({"NEWSLETTER_EMBED_ORIGINS": bad})


def test_dev_mailbox_needs_debug_and_a_loopback_base_url():
    from newsletter.config_checks import check_dev_mailbox

    dev = {"DEV_MAILBOX": "/tmp/mail", "DEBUG": True, "BASE_URL": "http://127.0.0.1:5000"}
    check_dev_mailbox(dev)
    check_dev_mailbox({**dev, "BASE_URL": "http://localhost:5002"})
    check_dev_mailbox({**dev, "DEV_MAILBOX": "", "DEBUG": False,
                       "BASE_URL": "https://news.example.com"})
    for production in [{**dev, "DEBUG": False}, {**dev, "BASE_URL": "https://news.example.com"},
                       {**dev, "BASE_URL": "http://127.0.0.1.evil.example"}]:
        with pytest.raises(ConfigError, match="NEWSLETTER_DEV_MAILBOX"):
            check_dev_mailbox(production)


@pytest.mark.parametrize("setting", ["SMTP_CA_FILE", "BOUNCE_IMAP_CA_FILE"])
def test_a_ca_file_is_checked_at_start(tmp_path, setting):
    """Missing, a folder, or no certificate in it: refused at start with the setting's
    name, not discovered at the first connection."""
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    for bad in (tmp_path / "missing.pem", tmp_path, not_pem):
        with pytest.raises(ConfigError, match=f"NEWSLETTER_{setting}: .*{bad}"):
            load_settings({f"NEWSLETTER_{setting}": str(bad)})
    assert load_settings({})[setting] == ""


def test_a_readable_ca_file_is_accepted(tmp_path):
    ca = private_ca(tmp_path)
    assert load_settings({"NEWSLETTER_SMTP_CA_FILE": f" {ca.ca_cert} "})["SMTP_CA_FILE"] == str(
        ca.ca_cert)
