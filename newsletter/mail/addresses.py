"""Address and display-name validation shared by forms, the API, imports and config.

Python 3.11.7 predates the fix for CVE-2024-6923: an encoded word in a display
name can smuggle a header line. So names with control characters, line
separators or ``=?`` are refused outright, and headers are built from
``email.headerregistry.Address`` objects, never from string joins.
"""

from __future__ import annotations

import contextlib
import unicodedata
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

import idna
from email_validator import EmailNotValidError, validate_email

from newsletter.mail.language import N_

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200

# Providers that ignore dots in the local part, and the one domain each stands for
# (googlemail.com delivers to the same mailboxes as gmail.com). Used only to count
# confirmation mails per real mailbox; subscriptions keep the address as typed.
DOT_BLIND_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
_FORBIDDEN_IN_NAMES = ("\r", "\n", "\x00", "\u2028", "\u2029", "=?")


class InvalidAddress(ValueError):
    """An email address or display name that must not be stored or mailed. Keeps the
    message's catalogue form and its values, so a reader's page can translate it."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values


@dataclass(frozen=True)
class EmailAddress:
    given: str  # as the reader typed it (trimmed)
    normalized: str  # the unique form: lower-cased, IDNA-normalised domain

    @property
    def canonical(self) -> str:
        """The mailbox it reaches: see canonical_mailbox(). Computed when asked: the
        subscribe request path never needs it."""
        return canonical_mailbox(self.normalized)

    @property
    def canonical_domain(self) -> str:
        return self.canonical.rpartition("@")[2]


def check_email(raw: object) -> EmailAddress:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidAddress(N_("Enter an email address."))
    text = raw.strip()
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidAddress(N_("An email address has at most %(most)s characters."),
                             most=MAX_EMAIL_LENGTH)
    if any(char in text for char in _FORBIDDEN_IN_NAMES) or any(ord(c) < 32 for c in text):
        raise InvalidAddress(N_("That email address contains characters that are not allowed."))
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise _not_valid(str(error)) from None
    normalized = f"{result.local_part.lower()}@{result.domain.lower()}"
    return EmailAddress(given=text, normalized=normalized)


# The validator's reasons are English and many: a reader's page shows the nearest of
# these sentences (in the catalogues), first match wins; the API and the editors' pages
# keep the validator's own words (the error's text).
_REASONS = (
    (("must have an @-sign", "at-sign"),
     N_("That email address is not valid: it needs an @ sign, as in name@example.com.")),
    (("something before the @-sign",),
     N_("That email address is not valid: there must be something before the @ sign.")),
    (("too long",), N_("That email address is not valid: it is too long.")),
    (("after the @-sign", "something after the @-sign"),
     N_("That email address is not valid: the part after the @ sign is not a domain such "
        "as example.com.")),
    (("character", "period", "quot", "ASCII", "angle bracket", "display name"),
     N_("That email address is not valid: it holds characters or dots where an address "
        "cannot have them.")),
)


def _not_valid(reason: str) -> InvalidAddress:
    message = next((sentence for markers, sentence in _REASONS
                    if any(marker in reason for marker in markers)),
                   N_("That email address is not valid."))
    error = InvalidAddress(message)
    error.args = (f"That email address is not valid: {reason}",)
    return error


def ascii_domain(address: str) -> str:
    """The address with its domain in ASCII (IDNA) form, which every relay accepts;
    the local part is left as typed."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    with contextlib.suppress(idna.IDNAError, UnicodeError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local}@{domain}"


def canonical_mailbox(address: str) -> str:
    """The mailbox an address reaches, whatever its spelling: the key that limits
    confirmation mails. Lower-cased, the domain in its ASCII (IDNA) form, a
    ``+tag`` removed, and dots removed for providers that ignore them
    (DOT_BLIND_DOMAINS, with googlemail.com counted as gmail.com).

    ``canonical_mailbox("V.I.C.Tim+news@GoogleMail.com") == "victim@gmail.com"``
    """
    local, _, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    local, domain = local.lower(), domain.lower().rstrip(".")
    # Not a valid IDN: keep the lower-cased text, still one key per spelling.
    with contextlib.suppress(idna.IDNAError, UnicodeError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    untagged = local.split("+", 1)[0]
    if untagged:  # "+tag@host" alone keeps its text: there is no mailbox part to keep
        local = untagged
    if domain in DOT_BLIND_DOMAINS:
        domain = DOT_BLIND_DOMAINS[domain]
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def check_name(raw: object) -> str | None:
    """A subscriber's optional display name; ``None`` when blank."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidAddress(N_("A name must be text."))
    text = raw.strip()
    if not text:
        return None
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidAddress(N_("A name has at most %(most)s characters."), most=MAX_NAME_LENGTH)
    if any(bad in text for bad in _FORBIDDEN_IN_NAMES) or any(
        ord(char) < 32 or ord(char) == 127 for char in text
    ):
        raise InvalidAddress(N_("A name must not contain line breaks or control characters."))
    return text


def mailbox(email: str, name: str | None = None) -> Address:
    """A header-safe ``Address``; re-checks both parts as defence in depth."""
    checked = check_email(email)
    local, _, domain = checked.given.rpartition("@")
    return Address(display_name=check_name(name) or "", username=local, domain=domain)


def parse_mailbox(value: str) -> Address:
    """Parse ``Display Name <addr@host>`` (used for MAIL_FROM); ValueError on junk."""
    if any(bad in str(value) for bad in _FORBIDDEN_IN_NAMES):
        raise ValueError("must not contain line breaks, control characters or '=?'")
    name, addr = parseaddr(str(value))
    if not addr:
        raise ValueError(
            f"expected an address such as 'The Daily <news@example.com>', got {value!r}")
    local, sep, domain = addr.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"{addr!r} is not an email address")
    try:
        display = check_name(name) or ""
    except InvalidAddress as error:
        raise ValueError(str(error)) from None
    return Address(display_name=display, username=local, domain=domain)
