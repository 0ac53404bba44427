"""Settings owners edit in the workspace or with ``flask settings set``: the site's
name, postal address, sender name, reply-to, branding and the texts of two mails.
The environment's SITE_NAME, POSTAL_ADDRESS and MAIL_FROM name are the defaults of
a setting left empty.

Values are checked when saved and again when read (a row written by hand or an
older version must not reach a page unchecked): the accent colour ends up in
CSS and the logo URL in the pages' CSP and in mails, so each has a strict form.
Mail texts are plain text with fixed placeholders, substituted by string
replacement and escaped like any other value: never compiled as a template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from email.headerregistry import Address
from urllib.parse import urlsplit

from flask import current_app, g
from sqlalchemy import select

from newsletter.content import site_logo
from newsletter.extensions import db
from newsletter.mail.addresses import InvalidAddress, check_email, check_name, parse_mailbox
from newsletter.models import SiteSetting

ACCENT_COLOR = re.compile(r"#[0-9a-f]{6}")
HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")  # RFC 3986, nothing else
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")

DEFAULT_CONFIRM_TEXT = "Hello, please confirm that you want to receive {site_name} at this address."
DEFAULT_WELCOME_TEXT = "Our weekly digest of new articles will reach {email}."
# The confirmation mail goes to whoever was named: it may hold nothing a requester chose,
# so its text knows only the site's name.
PLACEHOLDERS = {"confirm_text": ("{site_name}",), "welcome_text": ("{site_name}", "{email}")}
MAX_LENGTH = {"logo_url": 500, "accent_color": 7, "site_description": 300,
              "confirm_text": 1000, "welcome_text": 2000, "site_name": 100,
              "postal_address": 300, "sender_name": 100, "reply_to": 254}
ONE_LINE = {"site_description", "site_name", "postal_address", "sender_name"}
LABELS = {"logo_url": "logo URL", "accent_color": "accent colour",
          "site_description": "description", "confirm_text": "confirmation text",
          "welcome_text": "welcome text", "site_name": "site name",
          "postal_address": "postal address", "sender_name": "sender name",
          "reply_to": "reply-to address"}
# Left empty, these take the environment's value (see _with_defaults).
ENVIRONMENT_DEFAULTS = ("site_name", "postal_address", "sender_name")
# Short names the command line accepts too.
ALIASES = {"description": "site_description"}


@dataclass(frozen=True)
class Branding:
    logo_url: str = ""  # https only; "" for none
    accent_color: str = ""  # "#rrggbb"; "" for the default
    site_description: str = ""
    confirm_text: str = DEFAULT_CONFIRM_TEXT
    welcome_text: str = DEFAULT_WELCOME_TEXT
    site_name: str = ""  # "": the environment's SITE_NAME
    postal_address: str = ""  # "": POSTAL_ADDRESS
    sender_name: str = ""  # "": the name in MAIL_FROM
    reply_to: str = ""  # "": no Reply-To header
    uploaded_logo_url: str = ""  # set by current() when a logo was uploaded

    @property
    def accent_text(self) -> str:
        """Black or white, whichever reads better on the accent colour (a button's text)."""
        colour = self.accent_color or "#1f5eff"
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
        # Contrast with white (1.05 / (L + 0.05)) against contrast with black ((L + 0.05) / 0.05).
        return "#ffffff" if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 else "#111111"

    @property
    def logo_src(self) -> str:
        """The logo mails and pages show: an uploaded one wins over the URL."""
        return self.uploaded_logo_url or self.logo_url

    @property
    def logo_origin(self) -> str | None:
        """The logo's origin, for the pages' img-src: checked to hold no CSP syntax."""
        if not self.logo_url:
            return None
        parts = urlsplit(self.logo_url)
        return f"https://{parts.netloc}"


KEYS = tuple(field.name for field in fields(Branding) if field.name != "uploaded_logo_url")


class InvalidSetting(ValueError):
    """A value a form must refuse; the message says what is allowed."""


def _check_logo_url(value: str) -> str:
    if not value:
        return ""
    if not URL_CHARACTERS.fullmatch(value):
        raise InvalidSetting("The logo URL may hold no spaces, quotes or angle brackets.")
    parts = urlsplit(value)
    if parts.scheme != "https":
        raise InvalidSetting("The logo URL must start with https://.")
    try:
        port = parts.port
    except ValueError:
        raise InvalidSetting("The logo URL has an invalid port.") from None
    host = parts.hostname or ""
    if parts.username is not None or not HOST.fullmatch(host) or "." not in host:
        raise InvalidSetting("The logo URL needs a host name such as cdn.example.com "
                             "(no user name; an international name in its xn-- form).")
    if parts.netloc != (host if port is None else f"{host}:{port}"):
        raise InvalidSetting("Write the logo URL's host name in lower case.")
    return value


def _check_accent_color(value: str) -> str:
    value = value.lower()
    if value and not ACCENT_COLOR.fullmatch(value):
        raise InvalidSetting("The accent colour must be written #rrggbb, e.g. #1f5eff.")
    return value


def _check_text(key: str, value: str, *, one_line: bool) -> str:
    value = value.replace("\r\n", "\n").strip()
    if one_line and "\n" in value:
        raise InvalidSetting(f"The {LABELS[key]} is one line.")
    if CONTROL.search(value):
        raise InvalidSetting("Remove the control characters from the text.")
    allowed = PLACEHOLDERS.get(key, ())
    unknown = [p for p in PLACEHOLDER.findall(value) if p not in allowed]
    if unknown:
        hint = f"use {' or '.join(allowed)}" if allowed else "no placeholders here"
        raise InvalidSetting(f"Unknown placeholder {unknown[0]}: {hint}.")
    return value


def _check_reply_to(value: str) -> str:
    if not value:
        return ""
    try:
        return check_email(value).given
    except InvalidAddress as error:
        raise InvalidSetting(str(error)) from None


def check(key: str, value: object) -> str:
    """The value to store for a setting, or InvalidSetting with the reason."""
    if not isinstance(value, str):
        raise InvalidSetting("Send the value as text.")
    value = value.strip()
    if len(value) > MAX_LENGTH[key]:
        raise InvalidSetting(f"At most {MAX_LENGTH[key]} characters.")
    if key == "logo_url":
        return _check_logo_url(value)
    if key == "accent_color":
        return _check_accent_color(value)
    if key == "reply_to":
        return _check_reply_to(value)
    if key == "sender_name":
        try:  # a From display name: the rules of a reader's name ("=?" would decode)
            check_name(value)
        except InvalidAddress as error:
            raise InvalidSetting(str(error)) from None
    value = _check_text(key, value, one_line=key in ONE_LINE)
    if key in PLACEHOLDERS and not value:
        return getattr(Branding, key)  # an emptied text falls back to ours
    return value


def current() -> Branding:
    """The saved settings, checked, defaults for the rest; read once per request or task."""
    if "branding" not in g:
        stored = dict(db.session.execute(
            select(SiteSetting.key, SiteSetting.value).where(SiteSetting.key.in_(KEYS))).all())
        values = {}
        for key, value in stored.items():
            try:
                values[key] = check(key, value)
            except InvalidSetting:
                current_app.logger.warning("site setting %s ignored: not a valid value", key)
        g.branding = _with_defaults(values)
    return g.branding


def _with_defaults(values: dict[str, str]) -> Branding:
    """The settings with the environment's values where one is empty, and the URL of an
    uploaded logo."""
    config = current_app.config
    defaults = {"site_name": config["SITE_NAME"], "postal_address": config["POSTAL_ADDRESS"],
                "sender_name": parse_mailbox(config["MAIL_FROM"]).display_name}
    values = dict(values)
    for key, default in defaults.items():
        values[key] = values.get(key) or default
    return Branding(**values, uploaded_logo_url=site_logo.current_url())


def stored() -> dict[str, str]:
    """What is saved, unresolved (an empty value: the environment's default)."""
    saved = dict(db.session.execute(
        select(SiteSetting.key, SiteSetting.value).where(SiteSetting.key.in_(KEYS))).all())
    return {key: saved.get(key, "") for key in KEYS}


def set_one(key: str, value: object) -> str:
    """Check and store one setting (the command line); InvalidSetting names the field.
    Returns the stored value. The caller commits."""
    key = ALIASES.get(key, key)
    if key not in KEYS:
        raise InvalidSetting(f"Unknown setting {key!r}: one of {', '.join(KEYS)}.")
    try:
        checked = check(key, value)
    except InvalidSetting as error:
        raise InvalidSetting(f"{key}: {error}") from None
    _store(key, checked)
    g.pop("branding", None)
    return checked


def _store(key: str, value: str) -> None:
    row = db.session.get(SiteSetting, key)
    if row is None:
        db.session.add(SiteSetting(key=key, value=value))
    else:
        row.value = value


def mail_from() -> str:
    """MAIL_FROM's address with the sender name of the settings."""
    sender = parse_mailbox(current_app.config["MAIL_FROM"])
    return str(Address(display_name=current().sender_name, addr_spec=sender.addr_spec))


def _checked(form: dict[str, object]) -> tuple[dict[str, str], dict[str, str]]:
    checked, errors = {}, {}
    for key in KEYS:
        try:
            checked[key] = check(key, form.get(key, ""))
        except InvalidSetting as error:
            errors[key] = str(error)
    return checked, errors


def errors_in(form: dict[str, object]) -> dict[str, str]:
    return _checked(form)[1]


def use_for_this_request(form: dict[str, object]) -> None:
    """Show pages and mails of this request with unsaved values (a preview); the
    caller has checked them with ``errors_in``."""
    g.branding = _with_defaults(_checked(form)[0])


def save(form: dict[str, object]) -> dict[str, str]:
    """Check every value; store all of them, or none when any is refused.
    Returns the refusals by key (empty when saved). The caller commits."""
    checked, errors = _checked(form)
    if errors:
        return errors
    for key, value in checked.items():
        _store(key, value)
    g.pop("branding", None)
    return {}


def fill(text: str, **values: str) -> str:
    """Put values into a text's placeholders (string replacement, no template)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text
