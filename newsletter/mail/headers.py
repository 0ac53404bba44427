"""The one way to write a header value: neutralised, then encoded and folded by us.

Python 3.11.7 predates the fix for CVE-2024-6923: when the email package
re-folds a header, an encoded word whose decoded text holds CR or LF
(``=?utf-8?q?=0D=0AReply-To:_a@evil.example?=``) becomes a header line of its
own. Article titles reach the digest's Subject, so any feed author, API-token
holder or editor could add headers to every reader's copy. So every value the
app writes goes through ``neutralise`` (control characters, line separators and
``=?`` cannot survive it) and is then encoded here, never by the email package:
ASCII text is written as it is, folded at spaces; anything else becomes RFC 2047
encoded words that we produce, whose decoded text can never contain a line
break or another encoded word. ``header_line`` gives the bytes for hand-built
messages (the digest); ``SafeHeader`` carries the same bytes into an
``EmailMessage`` (confirmation, welcome, test mails), whose policy then writes
them untouched.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from urllib.parse import quote

MAX_LINE = 78  # RFC 5322's recommended limit
MAX_ENCODED_LINE = 76  # RFC 2047: a line holding encoded words
MAX_ENCODED_WORD = 75
_ENCODED_WORD_START = "=?"

# Characters that end a header line somewhere (CR, LF, NUL, U+2028/2029, the C1
# NEL, ...) or have no business in one: every C0 and C1 control, DEL, line and
# paragraph separators, and lone surrogates (unencodable, a 500 waiting to happen).
# (Unicode categories Cc, Zl, Zp and Cs, spelled out.)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Letters, digits and a few marks may stand for themselves inside a Q-encoded word
# in any header (RFC 2047 section 5 (3), the strictest rule: phrases).
_Q_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
# A display name written without quotes: atext and spaces only (RFC 5322 3.2.3).
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")
# An address we write as it is: dot-atom local part and domain, no spaces or brackets.
_ADDR_SPEC = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


class HeaderError(ValueError):
    """A value that cannot be made into a header (an address we cannot write)."""


def clean_text(value: object) -> str:
    """One line of text: control characters and line separators become spaces,
    runs of whitespace one space."""
    return " ".join(_UNSAFE.sub(" ", str(value or "")).split())


def neutralise(value: object) -> str:
    """``clean_text`` that also breaks every ``=?``, so no decoder ever reads an
    encoded word in the text, however the header is re-folded later."""
    text = clean_text(value)
    while _ENCODED_WORD_START in text:
        text = text.replace(_ENCODED_WORD_START, "= ?")
    return text


def _fold_words(name: str, words: list[str], limit: int = MAX_LINE) -> str:
    """Join ``words`` with spaces after ``Name:``, starting a new line (with the
    space) before a word that would pass ``limit``: unfolding gives the text back."""
    lines = [f"{name}:"]
    for index, word in enumerate(words):
        if index and len(lines[-1]) + 1 + len(word) > limit:
            lines.append(" " + word)
        else:
            lines[-1] += " " + word
    return "\r\n".join(lines) + "\r\n"


def _q_encode_char(char: str) -> str:
    if char == " ":
        return "_"
    if char in _Q_LITERAL:
        return char
    return "".join(f"={byte:02X}" for byte in char.encode("utf-8"))


def encoded_words(text: str, first_budget: int = MAX_ENCODED_WORD) -> list[str]:
    """``text`` as RFC 2047 Q-encoded UTF-8 words of at most 75 characters (the
    first at most ``first_budget``), never splitting a character between words."""
    prefix, suffix = "=?utf-8?q?", "?="
    words, current = [], ""
    budget = max(first_budget, len(prefix) + len(suffix) + 12)  # room for one 4-byte char
    for char in text:
        encoded = _q_encode_char(char)
        if current and len(prefix) + len(current) + len(encoded) + len(suffix) > budget:
            words.append(prefix + current + suffix)
            current, budget = "", MAX_ENCODED_WORD
        current += encoded
    if current or not words:
        words.append(prefix + current + suffix)
    return words


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable() and _ENCODED_WORD_START not in text


def text_value(name: str, value: object) -> str:
    """An unstructured header (Subject, List-Id, ...), folded, as ``Name: ...\\r\\n``."""
    text = neutralise(value)
    words = text.split(" ")
    if _plain(text) and all(len(word) <= MAX_LINE - len(name) - 2 for word in words):
        if len(name) + 2 + len(text) <= MAX_LINE:  # the common case: one short line
            return f"{name}: {text}\r\n"
        return _fold_words(name, words)
    # Non-ASCII, or a word too long to fold: encoded words carry the whole value,
    # spaces included, so a decoder's unfolding cannot change the text.
    return _fold_words(name, encoded_words(text, MAX_ENCODED_LINE - len(name) - 2),
                       MAX_ENCODED_LINE)


def _display_name(name: str) -> list[str]:
    """A phrase: atoms as they are, other ASCII quoted, anything else encoded words."""
    if _ATOM_PHRASE.fullmatch(name):
        return name.split(" ")
    if name.isascii():
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encoded_words(name)


def _addr_spec(addr_spec: str) -> str:
    """The address as written in the header; the domain in its ASCII (IDNA) form."""
    if not _ADDR_SPEC.fullmatch(addr_spec) or _UNSAFE.search(addr_spec):
        raise HeaderError(f"{addr_spec!r} cannot be written into a header")
    local, _, domain = addr_spec.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise HeaderError(f"{addr_spec!r} has a domain that is not a valid IDN") from None
    # A non-ASCII local part can only travel as UTF-8 (SMTPUTF8); it holds no
    # spaces, controls or brackets (checked above), so it cannot break the line.
    return f"{local}@{domain}"


def address_value(name: str, addr_spec: str, display_name: str | None = None) -> str:
    """From/To with an optional display name, as ``Name: ...\\r\\n``."""
    address = "<" + _addr_spec(addr_spec) + ">"
    display = neutralise(display_name)
    if not display:
        return f"{name}: {address}\r\n"
    return _fold_words(name, _display_name(display) + [address])


def url_list_value(name: str, *urls: str) -> str:
    """List-Unsubscribe / List-Archive: ``<url>, <url>``, every URL percent-encoded
    so it holds no space, bracket, control character or ``=?``."""
    if len(urls) == 1 and _URL_AS_IT_IS.fullmatch(urls[0]) and "=?" not in urls[0]:
        return f"{name}: <{urls[0]}>\r\n"  # what the general path makes of it, sooner
    return _fold_words(name, _bracketed_urls(urls).split(" "))


_URL_SAFE = "/:@!$&'()*+,;=?#[]-._~%"
# A URL that percent-encoding leaves as it is (one word: nothing to fold at).
_URL_AS_IT_IS = re.compile(r"[A-Za-z0-9" + re.escape(_URL_SAFE) + r"]+")


def _bracketed_urls(urls) -> str:
    safe = _URL_SAFE
    quoted = [quote(clean_text(url), safe=safe).replace("=?", "=%3F") for url in urls]
    return ", ".join(f"<{url}>" for url in quoted)


LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Z]{2})?")


def language_tag(code: str) -> str:
    """A Content-Language value (RFC 3282) from a catalogue code: ``pt_BR`` -> ``pt-BR``;
    ValueError for anything else (the codes come from NEWSLETTER_LANGUAGES)."""
    tag = str(code).replace("_", "-")
    if not LANGUAGE_TAG.fullmatch(tag):
        raise ValueError(f"not a language code: {code!r}")
    return tag


def header_line(name: str, value: object) -> bytes:
    """The bytes of one unstructured header for a hand-built message."""
    return text_value(name, value).encode("ascii")


def address_line(name: str, addr_spec: str, display_name: str | None = None) -> bytes:
    return address_value(name, addr_spec, display_name).encode("utf-8")


def url_list_line(name: str, *urls: str) -> bytes:
    return url_list_value(name, *urls).encode("ascii")


class SafeHeader(str):
    """A header for ``EmailMessage`` that the email package stores and writes as we
    encoded it (the policy calls ``fold``); its ``str`` value is the neutralised text,
    and address headers keep ``addresses`` as the registry's headers do."""

    def __new__(cls, name: str, folded: str, text: str,
                addresses: tuple[Address, ...] = ()):
        header = super().__new__(cls, text)
        header.name, header._folded, header.addresses = name, folded, addresses
        return header

    def fold(self, *, policy) -> str:
        folded = self._folded.replace("\r\n", policy.linesep)
        if not policy.utf8 and not folded.isascii():
            # Only an internationalised local part is left unencoded (it has no
            # ASCII form): the binary generator writes it as UTF-8, as SMTPUTF8 needs.
            folded = folded.encode("utf-8").decode("ascii", "surrogateescape")
        return folded

    @classmethod
    def text(cls, name: str, value: object) -> SafeHeader:
        return cls(name, text_value(name, value), neutralise(value))

    @classmethod
    def address(cls, name: str, addr_spec: str, display_name: str | None = None) -> SafeHeader:
        display = neutralise(display_name)
        local, _, domain = addr_spec.rpartition("@")
        parsed = Address(display_name=display, username=local, domain=domain)
        return cls(name, address_value(name, addr_spec, display_name), str(parsed), (parsed,))

    @classmethod
    def url_list(cls, name: str, *urls: str) -> SafeHeader:
        return cls(name, url_list_value(name, *urls), _bracketed_urls(urls))
