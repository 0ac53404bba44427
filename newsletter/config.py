"""Every setting, its default and its environment variable, in one place.

Each setting is read from ``NEWSLETTER_<NAME>``. This module is the only place
that reads ``os.environ``; the rest of the code reads ``app.config``.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from newsletter.mail.language import parse_languages
from newsletter.mail.relays import parse_relays
from newsletter.redis_connections import parse_sentinels

ENV_PREFIX = "NEWSLETTER_"
DEFAULT_SECRET_KEY = "dev-insecure-secret-key"
# The feed poll task's soft time limit (workers/tasks.py) is above this.
FEED_DEADLINE_MAX = 120.0
# The webhook delivery task's time limit (workers/tasks.py) is above this.
WEBHOOK_DEADLINE_MAX = 60.0


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


def _percent(value: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a percentage such as 0.1, got {value!r}") from None
    if not 0 < number <= 100:
        raise ValueError(f"must be above 0 and at most 100, got {number}")
    return number


def _domain(value: str) -> str:
    text = str(value).strip().lower().rstrip(".")
    if text and (not all(part and part.replace("-", "").isalnum() and part.isascii()
                         for part in text.split(".")) or "." not in text):
        raise ValueError(f"expected a domain name such as bounces.example.com, got {value!r}")
    return text


def _imap_url(value: str) -> str:
    text = str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in {"imaps", "imap"} or not parts.hostname or not parts.username:
        raise ValueError("expected imaps://USER:PASSWORD@HOST[:PORT]/FOLDER?processed=FOLDER "
                         "(imap:// means STARTTLS; the password is never sent in clear)")
    return text


def _words(value: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in str(value).split(",") if word.strip())


def _urls(value: str) -> tuple[str, ...]:
    return tuple(_http_url(url) for url in str(value).split(",") if url.strip())


def _seconds(minimum: float, maximum: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {value!r}") from None
        if not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum:g} and {maximum:g}, got {number:g}")
        return number

    return parse


def _networks(value: str) -> tuple:
    """Comma-separated networks such as ``127.0.0.2/32, 10.1.0.0/16``."""

    networks = []
    for item in str(value).split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip()))
            except ValueError:
                raise ValueError(f"expected networks such as 10.1.0.0/16, got {item.strip()!r}"
                                 ) from None
    return tuple(networks)


def _header_text(value: str) -> str:
    """A value written into a header as it is (e.g. List-Id): printable ASCII."""
    text = str(value).strip()
    if not (text.isascii() and text.isprintable()) or "=?" in text:
        raise ValueError(f"expected printable ASCII without '=?', got {value!r}")
    return text


def _schedule(value: str) -> str:
    from newsletter.issues.schedule import parse_schedule

    parse_schedule(value)  # raises ValueError with a reason
    return " ".join(str(value).split())


def _daily_schedule(value: str) -> str:
    from newsletter.issues.schedule import parse_daily_schedule

    text = " ".join(str(value).split())
    if text:
        parse_daily_schedule(text)  # raises ValueError with a reason
    return text


def _absolute_path(value: str) -> str:
    text = os.path.expanduser(str(value).strip())
    if text and not os.path.isabs(text):
        raise ValueError(f"expected an absolute path such as /var/lib/newsletter, got {value!r}")
    return text


def _ca_file(value: str) -> str:
    """CA certificates (PEM) to trust for one TLS peer, checked at start: a missing or
    unreadable file stops the process instead of failing every connection later."""
    path = os.path.expanduser(str(value).strip())
    if not path:
        return ""
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (OSError, ssl.SSLError) as error:  # a folder, no permission, not PEM
        raise ValueError(f"cannot load CA certificates from {path}: {error}") from None
    return path


def _secrets(value: str) -> list[str]:
    return [key.strip() for key in str(value).split(",") if key.strip()]


def _origins(value: str) -> list[str]:
    return [origin.strip().rstrip("/") for origin in str(value).split(",") if origin.strip()]


def _rate_limit(value: str) -> str:
    """A limit such as ``10 per minute;100 per hour`` (checked at start-up, not per request)."""
    from limits import parse_many

    parse_many(str(value))  # ValueError on junk
    return str(value)


def _frame_origins(value: str) -> tuple[str, ...]:
    """Origins allowed to frame the embeddable form: ``*`` or https://host[:port] ..."""
    origins = tuple(str(value).replace(",", " ").split())
    if not origins:
        raise ValueError("expected * or origins such as https://example.com")
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in {"http", "https"} or not parts.hostname
                              or parts.path.strip("/") or parts.query or parts.fragment
                              or any(char in origin for char in ";'\"\\")):
            raise ValueError(f"expected * or origins such as https://example.com, got {origin!r}")
    return tuple(origin.rstrip("/") for origin in origins)


# --- the key of editors' TOTP secrets at rest (read only through ``totp_keys``) ---

MIN_TOTP_KEY_CHARS = 32


def _totp_key(value: str, what: str = "a key") -> str:
    text = str(value).strip()
    if text and (len(text) < MIN_TOTP_KEY_CHARS or not text.isascii()
                 or not text.isprintable() or " " in text or "," in text):
        raise ValueError(f"{what} must be at least {MIN_TOTP_KEY_CHARS} printable ASCII "
                         "characters without spaces or commas, random (e.g. "
                         "python3 -c 'import secrets; print(secrets.token_hex(32))'); "
                         f"got {len(text)} characters")
    return text


def _totp_key_list(value: str) -> list[str]:
    return [_totp_key(key, "each key") for key in str(value).split(",") if key.strip()]


def totp_keys(config: Mapping[str, Any]) -> list[bytes]:
    """The Fernet keys of editors' TOTP secrets, the one to encrypt with first:
    TOTP_KEY and its fallbacks, else keys derived from SECRET_KEY and its fallbacks
    (so a SECRET_KEY rotation keeps them readable while the old key is a fallback)."""
    import base64
    import hashlib

    chosen = ([_totp_key(config["TOTP_KEY"]), *map(_totp_key, config["TOTP_KEY_FALLBACKS"])]
              if config.get("TOTP_KEY") else
              [config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", ())])
    return [base64.urlsafe_b64encode(hashlib.sha256(b"totp-secrets:" + str(key).encode())
                                     .digest()) for key in chosen]


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
            "Pepper of the erased-address hash, so an erased address is never mailed again. "
            "Required: at least 32 bytes, random; back it up with the database and never "
            "rotate it (a process started with another key than the database's refuses to "
            "start)."),
    Setting("TOTP_KEY", "", _totp_key,
            "Encrypts editors' two-factor (TOTP) secrets in the database: at least 32 "
            "characters, random. Empty: derived from SECRET_KEY (and each fallback)."),
    Setting("TOTP_KEY_FALLBACKS", [], _totp_key_list,
            "Comma-separated previous TOTP_KEYs, still read. To rotate: old key here, a new "
            "TOTP_KEY, then `flask --app newsletter editors reseal-totp` and drop the old one."),
    Setting("SESSION_IDLE_TIMEOUT", 3600, _int(60),
            "Seconds without a click after which an editor's session ends."),
    Setting("SESSION_MAX_AGE", 12 * 3600, _int(60),
            "Seconds after login after which an editor's session ends, however active."),
    Setting("LOGIN_FREE_ATTEMPTS", 5, _int(1),
            "Failed logins to one account from one network (or known device) before its "
            "further tries wait (1 s, 2 s, 4 s, ... as the account's failures say)."),
    Setting("LOGIN_ALERT_AFTER", 10, _int(1),
            "Failed logins to one account after which its editor gets a warning mail."),
    Setting("LOGIN_RATE_LIMIT", "10 per minute;50 per hour", _str,
            "Login attempts per client network (IPv4 address, IPv6 /64)."),
    Setting("REQUIRE_TWO_FACTOR", False, _bool,
            "Every editor must enrol a TOTP second factor before using the workspace."),
    Setting("DATABASE_URL", None, _str,
            "SQLAlchemy URL. Default: SQLite file `newsletter.db` in the instance folder."),
    Setting("INSTANCE_PATH", "", _absolute_path,
            "Absolute path of the instance folder (SQLite database, beat schedule, uploads). "
            "Default: `instance/` in the source tree; `<virtualenv>/var/newsletter-instance` "
            "for an installed package."),
    Setting("REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url,
            "Celery broker and rate-limit storage."),
    Setting("REDIS_SENTINELS", (), parse_sentinels,
            "Redis under Sentinel: the sentinels, host:port,host:port (REDIS_URL: db, password)."),
    Setting("REDIS_SENTINEL_MASTER", "", _str, "The master's name the sentinels monitor."),
    Setting("REDIS_SENTINEL_PASSWORD", "", _str, "The sentinels' own password, if any."),
    Setting("SMTP_HOST", "127.0.0.1", _str, "SMTP relay host."),
    Setting("SMTP_PORT", 1025, _int(1), "SMTP relay port (the dev catcher listens on 1025)."),
    Setting("SMTP_USERNAME", "", _str, "SMTP login; empty means no authentication."),
    Setting("SMTP_PASSWORD", "", _str, "SMTP password."),
    Setting("SMTP_SECURITY", "none", _choice("none", "starttls", "ssl"),
            "`none`, `starttls` or `ssl` (implicit TLS, usually port 465)."),
    Setting("SMTP_TIMEOUT", 30, _int(1), "Seconds to wait on the SMTP server."),
    Setting("SMTP_CA_FILE", "", _ca_file,
            "CA certificate(s) (PEM) to trust for the relay's TLS instead of the system's, "
            "for a relay signed by a private CA; checked at start."),
    Setting("SMTP_RELAYS", (), parse_relays,
            "A pool of relays, a JSON list (host, port, security, username, password, weight, "
            "rate), with failover; empty: the one relay of the SMTP_* settings."),
    Setting("MAIL_FROM", "The Newsletter <newsletter@localhost>", _mailbox,
            "From header, with display name (the sender_name site setting overrides the name)."),
    Setting("SITE_NAME", "The Newsletter", _str,
            "Name shown on pages and in mails, unless the site_name site setting is set."),
    Setting("BASE_URL", "http://127.0.0.1:5000", _http_url,
            "Public URL of the web app; absolute links in mails start with it."),
    Setting("LIST_ID", "", _header_text,
            "List-Id header value; default `<newsletter.HOST>` from BASE_URL."),
    Setting("POSTAL_ADDRESS", "The Newsletter, 1 Example Street, Springfield", _str,
            "Sender's postal address, printed in every mail footer (CAN-SPAM), unless the "
            "postal_address site setting is set."),
    Setting("CONFIRM_MAX_AGE", 7 * 24 * 3600, _int(60),
            "Seconds a confirmation link stays valid."),
    Setting("CONFIRM_MAILS_PER_DAY", 3, _int(1),
            "Confirmation mails one mailbox may receive in 24 hours, whatever the spelling "
            "(case, `+tags`, dots at gmail.com/googlemail.com, IDN domain)."),
    Setting("CONFIRM_MAIL_INTERVAL", 300, _int(0),
            "Minimum seconds between two confirmation mails to one mailbox."),
    Setting("CONFIRM_MAILS_PER_DOMAIN_PER_HOUR", 50, _int(1),
            "Confirmation mails all mailboxes of one recipient domain may receive in an hour; "
            "requests past it get no mail (raise it for a launch with many sign-ups)."),
    Setting("SUBSCRIBE_RATE_LIMIT", "10 per minute;100 per hour", _rate_limit,
            "Subscribe requests allowed per client IP, an IPv6 /64 counted as one "
            "(limits syntax: `10 per minute;100 per hour`)."),
    Setting("CORS_ORIGINS", (), _origins,
            "Comma-separated origins allowed to call the JSON API from a browser."),
    Setting("DEV_MAILBOX", "", _str,
            "Folder of .eml files shown at /dev/mail (set by the dev stack only; refused "
            "unless debug is on and BASE_URL is a loopback address)."),
    Setting("EMBED_ORIGINS", ("*",), _frame_origins,
            "Origins (space- or comma-separated) whose pages may frame the `/subscribe?embed=1` "
            "form; `*`: any site. Every other page refuses to be framed."),
    Setting("LEGACY_UNSUBSCRIBE_LINKS", True, _bool,
            "Accept unsubscribe links of the old signed-id format (mails sent before the "
            "upgrade); turn off once those mails are months old."),
    Setting("TASK_QUEUE", "newsletter", _str,
            "Prefix of the Celery queues: PREFIX.transactional, PREFIX.bulk, PREFIX.maintenance, "
            "PREFIX.webhooks."),
    Setting("FEEDS", (), _urls, "Comma-separated RSS/Atom feed URLs polled for new articles."),
    Setting("FEED_POLL_INTERVAL", 900, _int(30), "Seconds between two polls of the feeds."),
    Setting("SEQUENCE_INTERVAL", 15, _int(1),
            "Seconds between two runs of the sequences (enrol, move on, write due steps): "
            "a step goes at most this much after its time."),
    Setting("FEED_ALLOW_HTTP", False, _bool,
            "Also fetch plain-http feeds (and follow redirects to http); default https only."),
    Setting("FEED_FETCH_DEADLINE", 30.0, _seconds(0.5, FEED_DEADLINE_MAX),
            "Seconds one feed fetch may take in all (DNS, connect, TLS, headers, body, "
            f"redirects); at most {FEED_DEADLINE_MAX:g}, below the poll task's time limit."),
    Setting("FEED_MAX_BYTES", 10 * 1024 * 1024, _int(1024),
            "Largest feed body fetched, in bytes; a larger feed is refused."),
    Setting("FEED_ALLOWED_NETWORKS", (), _networks,
            "Comma-separated networks a feed may be fetched from although not public "
            "(e.g. `10.1.0.0/16` for an intranet CMS); default none: loopback, private, "
            "link-local, CGNAT, reserved and multicast addresses are refused."),
    Setting("WEBHOOK_ALLOW_PRIVATE", False, _bool,
            "Let webhook endpoints be on loopback, private or CGNAT addresses (an intranet "
            "CRM), never link-local (metadata); default: refused, like feeds."),
    Setting("WEBHOOK_CONNECT_TIMEOUT", 5.0, _seconds(0.1, WEBHOOK_DEADLINE_MAX),
            "Seconds a webhook delivery may take to connect."),
    Setting("WEBHOOK_DEADLINE", 15.0, _seconds(0.5, WEBHOOK_DEADLINE_MAX),
            "Seconds one webhook delivery attempt may take in all (DNS, connect, TLS, "
            f"request, answer); at most {WEBHOOK_DEADLINE_MAX:g}."),
    Setting("WEBHOOK_MAX_RESPONSE_BYTES", 65536, _int(1024),
            "Largest answer body read from a webhook endpoint; a larger one fails the attempt."),
    Setting("WEBHOOK_RETRY_DELAY", 30.0, _seconds(0.05, 3600),
            "Seconds before the first retry of a failed webhook delivery; doubles each time "
            "(at most an hour apart)."),
    Setting("WEBHOOK_RETRY_WINDOW", 86400.0, _seconds(1, 30 * 86400),
            "Seconds a webhook delivery is retried before it is given up; an endpoint that "
            "has failed for this long is disabled and the owners are told."),
    Setting("DIGEST_SCHEDULE", "mon 08:00 UTC", _schedule,
            "Weekly digest time: day, HH:MM and an IANA timezone, e.g. `fri 07:30 Europe/Paris`."),
    Setting("DAILY_SCHEDULE", "", _daily_schedule,
            "Daily digest time for readers who chose daily: HH:MM and an IANA timezone, e.g. "
            "`07:00 Europe/London`; empty: no daily issues, daily readers get the weekly one."),
    Setting("SEND_IN_READER_TIME", False, _bool, "Scheduled issues at their hour in each zone."),
    Setting("LANGUAGES", ("en",), parse_languages, "Readers' languages, e.g. `en,fr`."),
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
    Setting("SEND_CONCURRENCY", 4, _int(1),
            "Batch tasks of one send queued or running at once; each batch enqueues the next."),
    Setting("SEND_DOMAIN_BACKOFF", 60, _int(0),
            "Seconds a recipient domain is left alone after a reply about the domain (421, "
            "4.7.x) or 4xx for several of its readers (its other readers are deferred "
            "untried); 0: no backoff."),
    Setting("SEND_DOMAIN_BACKOFF_READERS", 3, _int(2),
            "Different readers of one domain answered 4xx within SEND_DOMAIN_BACKOFF seconds "
            "that back the domain off; fewer defer only those readers."),
    Setting("SEND_BREAKER_FAILURES", 5, _int(1),
            "Consecutive relay connection failures (within SEND_BREAKER_WINDOW) that pause a "
            "send."),
    Setting("SEND_BREAKER_WINDOW", 120, _int(1),
            "Seconds over which those failures are counted; a batch that cannot reach the "
            "relay retries after SEND_BREAKER_WINDOW / SEND_BREAKER_FAILURES."),
    Setting("PROXY_COUNT", 0, _int(0),
            "Reverse proxies in front of the app whose X-Forwarded-For is trusted: exactly "
            "the number of proxies that append to it (see docs/security.md)."),
    Setting("BOUNCE_DOMAIN", "", _domain,
            "Domain of the VERP envelope sender `bounces+TOKEN@DOMAIN`; default: the From "
            "domain. Its MX (or your relay's transport map) points at `bounces serve`."),
    Setting("BOUNCE_KEY", "", _str,
            "Signs VERP tokens and Message-IDs so forged bounces are ignored (at least 32 "
            "bytes). Default: derived from SECRET_KEY (and each fallback: bounces of mail sent "
            "before a rotation are still accepted)."),
    Setting("BOUNCE_KEY_FALLBACKS", [], _secrets,
            "Comma-separated previous BOUNCE_KEYs, still accepted for bounces of mail sent "
            "before a rotation; keep each for BOUNCE_SOFT_DAYS plus a week."),
    Setting("BOUNCE_MAX_SIZE", 2 * 1024 * 1024, _int(10_000),
            "Largest bounce or complaint message (bytes) the receiver and the mailbox accept."),
    Setting("BOUNCE_RAW_RETENTION_DAYS", 90, _int(1),
            "Days the raw bytes of bounce and complaint reports are kept (the events stay)."),
    Setting("BOUNCE_PARKED_KEEP_BYTES", 4096, _int(512),
            "Bytes kept of a parked report (no genuine VERP token, or not understood): its "
            "beginning, for owners to read; the rest is dropped on arrival."),
    Setting("BOUNCE_PARKED_RETENTION_DAYS", 14, _int(1),
            "Days parked reports (their events and kept bytes) are kept."),
    Setting("BOUNCE_TOKENLESS_PER_CLIENT_PER_DAY", 100, _int(1),
            "Mails to the bounce address without a VERP token accepted per day from one "
            "client (IPv4 address or IPv6 /64); more are refused with 450 at RCPT."),
    Setting("BOUNCE_TOKENLESS_PER_DAY", 1000, _int(1),
            "Mails to the bounce address without a VERP token accepted per day from all "
            "clients together; more are refused with 452 at RCPT."),
    Setting("BOUNCE_TOKENLESS_MAX_SIZE", 512 * 1024, _int(10_000),
            "Largest mail without a VERP token (bytes; e.g. an ARF complaint with the "
            "original message) the bounce receiver accepts; bigger: 552 at DATA."),
    Setting("BOUNCE_SOFT_LIMIT", 3, _int(1),
            "Soft bounces in a row (no delivery in between) that mark a reader bounced, …"),
    Setting("BOUNCE_SOFT_DAYS", 7, _int(0),
            "… provided they span at least this many days."),
    Setting("BOUNCE_IMAP_URL", "", _imap_url,
            "A bounce mailbox polled by beat: `imaps://USER:PASSWORD@HOST/INBOX?processed="
            "Processed` (`imap://` uses STARTTLS). Processed mail is moved to that folder."),
    Setting("BOUNCE_IMAP_INTERVAL", 60, _int(10), "Seconds between two polls of the mailbox."),
    Setting("BOUNCE_IMAP_CA_FILE", "", _ca_file,
            "CA certificate(s) (PEM) to trust for the mailbox's TLS instead of the system's; "
            "checked at start."),
    Setting("WEBHOOK_SNS_TOPIC_ARNS", (), _words,
            "Amazon SES via SNS: comma-separated topic ARNs accepted at /webhooks/ses "
            "(empty: the endpoint is off)."),
    Setting("WEBHOOK_POSTMARK_AUTH", "", _str,
            "`user:password` Postmark sends as HTTP Basic auth to /webhooks/postmark "
            "(empty: off)."),
    Setting("WEBHOOK_MAILGUN_SIGNING_KEY", "", _str,
            "Mailgun's HTTP webhook signing key for /webhooks/mailgun (empty: off)."),
    Setting("WEBHOOK_SENDGRID_PUBLIC_KEY", "", _str,
            "SendGrid's signed event webhook verification key (base64) for /webhooks/sendgrid "
            "(empty: off)."),
    Setting("WEBHOOK_MAX_AGE", 300, _int(30),
            "Seconds a signed Mailgun or SendGrid request stays valid (replay window)."),
    Setting("GUARD_MIN_SAMPLE", 500, _int(1),
            "Messages an issue must have sent before the deliverability guard judges it."),
    Setting("GUARD_MAX_HARD_BOUNCE_PERCENT", 5.0, _percent,
            "Hard-bounce rate (% of messages sent) above which a send pauses itself."),
    Setting("GUARD_MAX_COMPLAINT_PERCENT", 0.1, _percent,
            "Complaint rate (% of messages sent) above which a send pauses itself."),
    Setting("TRACK_CLICKS", True, _bool,
            "Article links in digests go through `BASE_URL/r/...`, and each click is judged "
            "human or bot; only the verdict, time, link and copy are stored "
            "([analytics.md](analytics.md))."),
    Setting("TRACK_OPENS", False, _bool,
            "Digests carry an open pixel; opens are reported with machine opens (Apple Mail "
            "Privacy Protection, image proxies) counted apart."),
    Setting("TRACK_READERS", False, _bool,
            "Store the reader's id with each click and open (per-reader engagement); off: "
            "clicks are counted per copy without knowing whose copy it is."),
    Setting("SUNSET_AFTER_ISSUES", 0, _int(0),
            "Readers with no human click in this many issues get a re-engagement mail, "
            "then a pause ([deliverability.md](deliverability.md#sunset)); 0: off. Needs "
            "`TRACK_READERS`."),
    Setting("SUNSET_GRACE_DAYS", 14, _int(1),
            "Days after the re-engagement mail before a reader who did not click is paused."),
    Setting("CLICK_RETENTION_DAYS", 180, _int(1),
            "Days raw click rows are kept; older ones are folded into daily counts."),
    Setting("LOG_LEVEL", "info", _choice("debug", "info", "warning", "error", "critical"),
            "Lowest level logged by the web app, workers, beat and the bounce receiver: "
            "`debug`, `info`, `warning`, `error` or `critical`."),
    Setting("LOG_FORMAT", "text", _choice("text", "json"),
            "`text`, or `json`: one JSON object per line with the request and task ids."),
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
    folder = values["METRICS_MULTIPROC_DIR"] = environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
        problems.append(f"PROMETHEUS_MULTIPROC_DIR: {folder} is not a folder this user may write")
    if not problems and values["REDIS_SENTINELS"] and not values["REDIS_SENTINEL_MASTER"]:
        problems.append(f"{ENV_PREFIX}REDIS_SENTINEL_MASTER: name the master the sentinels "
                        f"monitor ({ENV_PREFIX}REDIS_SENTINELS is set)")
    if not problems:
        problems += _feed_problems(values)
    if not problems and values["SUNSET_AFTER_ISSUES"]:
        problems += [f"{ENV_PREFIX}SUNSET_AFTER_ISSUES: the sunset policy counts each "
                     f"reader's clicks, so it needs {ENV_PREFIX}{name}=true"
                     for name in ("TRACK_CLICKS", "TRACK_READERS") if not values[name]][:1]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return values


def _feed_problems(values: Mapping[str, Any]) -> list[str]:
    """Plain-http feeds only when allowed explicitly: say so at start, not at each poll."""
    if values["FEED_ALLOW_HTTP"]:
        return []
    plain = [url for url in values["FEEDS"] if url.startswith("http://")]
    return [f"{ENV_PREFIX}FEEDS: {url} is not https; feeds are fetched over https only "
            f"unless {ENV_PREFIX}FEED_ALLOW_HTTP=true" for url in plain[:1]]
