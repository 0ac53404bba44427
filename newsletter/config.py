"""Every setting, its default and its environment variable, in one place.

Each setting is read from ``NEWSLETTER_<NAME>``. This module is the only place
that reads ``os.environ``; the rest of the code reads ``app.config``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "NEWSLETTER_"
DEFAULT_SECRET_KEY = "dev-insecure-secret-key"


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _str(value: str) -> str:
    return value.strip()


def _int(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"must be at least {minimum}, got {number}")
        return number

    return parse


def _bool(value: str) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _http_url(value: str) -> str:
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an http(s) URL such as https://news.example.com, got {value!r}")
    return text


def _redis_url(value: str) -> str:
    text = str(value).strip()
    if urlsplit(text).scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(f"expected a redis:// URL, got {value!r}")
    return text


def _mailbox(value: str) -> str:
    """A From address such as ``The Daily <news@example.com>``."""
    from newsletter.mail.addresses import parse_mailbox

    parse_mailbox(value)  # raises ValueError with a reason
    return str(value).strip()


def _float_or_none(value: str) -> float | None:
    if str(value).strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {number}")
    return number


def _urls(value: str) -> tuple[str, ...]:
    return tuple(_http_url(url) for url in str(value).split(",") if url.strip())


def _schedule(value: str) -> str:
    from newsletter.services.schedule import parse_schedule

    parse_schedule(value)  # raises ValueError with a reason
    return " ".join(str(value).split())


def _secrets(value: str) -> list[str]:
    return [key.strip() for key in str(value).split(",") if key.strip()]


def _origins(value: str) -> list[str]:
    return [origin.strip().rstrip("/") for origin in str(value).split(",") if origin.strip()]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("SECRET_KEY", DEFAULT_SECRET_KEY, _str,
            "Signs sessions and email links. Required: at least 32 bytes, random."),
    Setting("SECRET_KEY_FALLBACKS", [], _secrets,
            "Comma-separated previous SECRET_KEYs, still accepted for sessions and mail "
            "links (key rotation); new ones are signed with SECRET_KEY."),
    Setting("SUPPRESSION_KEY", "", _str,
            "Pepper of the erased-address hash; never rotate it. Empty: generated once "
            "into `instance/suppression-key`."),
    Setting("SESSION_IDLE_TIMEOUT", 3600, _int(60),
            "Seconds without a click after which an editor's session ends."),
    Setting("SESSION_MAX_AGE", 12 * 3600, _int(60),
            "Seconds after login after which an editor's session ends, however active."),
    Setting("LOGIN_FREE_ATTEMPTS", 5, _int(1),
            "Failed logins to one account before each further try waits (1 s, 2 s, 4 s, ...)."),
    Setting("LOGIN_ALERT_AFTER", 10, _int(1),
            "Failed logins to one account after which its editor gets a warning mail."),
    Setting("LOGIN_RATE_LIMIT", "10 per minute;50 per hour", _str,
            "Login attempts per client network (IPv4 address, IPv6 /64)."),
    Setting("REQUIRE_TWO_FACTOR", False, _bool,
            "Every editor must enrol a TOTP second factor before using the workspace."),
    Setting("DATABASE_URL", None, _str,
            "SQLAlchemy URL. Default: SQLite file `instance/newsletter.db`."),
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url,
            "Celery broker and rate-limit storage."),
    Setting("SMTP_HOST", "127.0.0.1", _str, "SMTP relay host."),
    Setting("SMTP_PORT", 1025, _int(1), "SMTP relay port (the dev catcher listens on 1025)."),
    Setting("SMTP_USERNAME", "", _str, "SMTP login; empty means no authentication."),
    Setting("SMTP_PASSWORD", "", _str, "SMTP password."),
    Setting("SMTP_SECURITY", "none", _choice("none", "starttls", "ssl"),
            "`none`, `starttls` or `ssl` (implicit TLS, usually port 465)."),
    Setting("SMTP_TIMEOUT", 30, _int(1), "Seconds to wait on the SMTP server."),
    Setting("MAIL_FROM", "The Newsletter <newsletter@localhost>", _mailbox,
            "From header, with display name."),
    Setting("SITE_NAME", "The Newsletter", _str, "Name shown on pages and in mails."),
    Setting("BASE_URL", "http://127.0.0.1:5000", _http_url,
            "Public URL of the web app; absolute links in mails start with it."),
    Setting("LIST_ID", "", _str,
            "List-Id header value; default `<newsletter.HOST>` from BASE_URL."),
    Setting("POSTAL_ADDRESS", "The Newsletter, 1 Example Street, Springfield", _str,
            "Sender's postal address, printed in every mail footer (CAN-SPAM)."),
    Setting("CONFIRM_MAX_AGE", 7 * 24 * 3600, _int(60),
            "Seconds a confirmation link stays valid."),
    Setting("CONFIRM_MAILS_PER_DAY", 3, _int(1),
            "Confirmation mails one address may receive in 24 hours."),
    Setting("CONFIRM_MAIL_INTERVAL", 300, _int(0),
            "Minimum seconds between two confirmation mails to one address."),
    Setting("SUBSCRIBE_RATE_LIMIT", "10 per minute;100 per hour", _str,
            "Subscribe requests allowed per client IP (Flask-Limiter syntax)."),
    Setting("CORS_ORIGINS", (), _origins,
            "Comma-separated origins allowed to call the JSON API from a browser."),
    Setting("DEV_MAILBOX", "", _str,
            "Folder of .eml files shown at /dev/mail (set by the dev stack only)."),
    Setting("TASK_QUEUE", "newsletter", _str,
            "Prefix of the Celery queues: PREFIX.transactional, PREFIX.bulk, PREFIX.maintenance."),
    Setting("FEEDS", (), _urls, "Comma-separated RSS/Atom feed URLs polled for new articles."),
    Setting("FEED_POLL_INTERVAL", 900, _int(30), "Seconds between two polls of the feeds."),
    Setting("DIGEST_SCHEDULE", "mon 08:00 UTC", _schedule,
            "Weekly digest time: day, HH:MM and an IANA timezone, e.g. `fri 07:30 Europe/Paris`."),
    Setting("DIGEST_MIN_ARTICLES", 1, _int(1),
            "A digest with fewer new articles than this is not sent."),
    Setting("DIGEST_MAX_AGE_DAYS", 30, _int(1),
            "Articles older than this are never put in a digest (e.g. an imported archive)."),
    Setting("SEND_BATCH_SIZE", 100, _int(1), "Deliveries one task claims and sends."),
    Setting("SEND_LEASE", 300, _int(2),
            "Seconds a worker holds a claimed batch before the sweeper takes it back."),
    Setting("SEND_RATE", "", _float_or_none,
            "Messages per second across all workers (shared through Redis); empty: no cap."),
    Setting("SEND_RETRY_DELAY", 60, _int(0),
            "Seconds before the first retry of a deferred (4xx) delivery; doubles each time."),
    Setting("PROXY_COUNT", 0, _int(0),
            "Reverse proxies in front of the app whose X-Forwarded-For is trusted: exactly "
            "the number of proxies that append to it (see README)."),
)


def load_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Defaults, overridden by ``NEWSLETTER_*`` variables; every value validated."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        raw = environ.get(ENV_PREFIX + setting.name)
        if raw is None:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as error:
            problems.append(f"{ENV_PREFIX}{setting.name}: {error}")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return values


MIN_SECRET_BYTES = 32


def check_secret_key(config: Mapping[str, Any]) -> None:
    """Outside tests, refuse a key that is missing, short or the public default,
    whatever FLASK_DEBUG says: a debug server is reachable too, and a cookie signed
    with a known key opens the editor workspace."""
    if config.get("TESTING"):
        return
    hint = "e.g. python3 -c 'import secrets; print(secrets.token_hex(32))'"
    key = config.get("SECRET_KEY") or ""
    if key == DEFAULT_SECRET_KEY:
        raise ConfigError(f"{ENV_PREFIX}SECRET_KEY is not set (the built-in development key "
                          f"is refused); set it to a long random value, {hint}")
    if len(str(key).encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"{ENV_PREFIX}SECRET_KEY is {len(str(key).encode())} bytes; it needs "
                          f"at least {MIN_SECRET_BYTES} random bytes, {hint}")
    for old in config.get("SECRET_KEY_FALLBACKS") or ():
        if old == DEFAULT_SECRET_KEY or len(str(old).encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"{ENV_PREFIX}SECRET_KEY_FALLBACKS holds a key shorter than "
                              f"{MIN_SECRET_BYTES} bytes or the built-in one")
