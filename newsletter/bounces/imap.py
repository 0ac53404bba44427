"""A bounce mailbox polled over IMAP, for setups that only have a mailbox.

Each message is read, recorded by ``intake.receive_mail`` in a transaction of
its own, committed, and only then moved to the processed folder: a crash in between leaves it in
the inbox, and reading it again is harmless (the same bytes are one event).
TLS always: ``imaps://`` (implicit) or ``imap://`` with STARTTLS required; the
certificate is verified (BOUNCE_IMAP_CA_FILE to trust a private CA).
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

from newsletter.bounces import intake
from newsletter.db import unit_of_work
from newsletter.models import BounceSource

log = logging.getLogger(__name__)
MAX_PER_POLL = 500  # a flooded mailbox is worked through over several polls
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class MailboxError(RuntimeError):
    """The mailbox cannot be reached, logged into or read; nothing was moved."""


@dataclass
class PollResult:
    read: int = 0
    moved: int = 0
    summaries: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MailboxSettings:
    host: str
    port: int
    implicit_tls: bool
    user: str
    password: str
    folder: str
    processed: str

    @classmethod
    def from_url(cls, url: str) -> MailboxSettings:
        parts = urlsplit(url)
        implicit = parts.scheme == "imaps"
        query = parse_qs(parts.query)
        return cls(host=parts.hostname, port=parts.port or (993 if implicit else 143),
                   implicit_tls=implicit, user=unquote(parts.username or ""),
                   password=unquote(parts.password or ""),
                   folder=unquote(parts.path.lstrip("/")) or "INBOX",
                   processed=query.get("processed", ["Processed"])[0])


def _tls_context() -> ssl.SSLContext:
    ca_file = current_app.config["BOUNCE_IMAP_CA_FILE"] or None
    return ssl.create_default_context(cafile=ca_file)


def _connect(settings: MailboxSettings) -> imaplib.IMAP4:
    timeout = current_app.config["SMTP_TIMEOUT"]
    if settings.implicit_tls:
        connection = imaplib.IMAP4_SSL(settings.host, settings.port,
                                       ssl_context=_tls_context(), timeout=timeout)
    else:
        connection = imaplib.IMAP4(settings.host, settings.port, timeout=timeout)
        connection.starttls(ssl_context=_tls_context())  # raises if the server cannot
    connection.login(settings.user, settings.password)
    return connection


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def poll() -> PollResult:
    """Read the mailbox once: record every message, then move it; raises MailboxError."""
    url = current_app.config["BOUNCE_IMAP_URL"]
    if not url:
        raise MailboxError("NEWSLETTER_BOUNCE_IMAP_URL is not set")
    settings = MailboxSettings.from_url(url)
    try:
        connection = _connect(settings)
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as error:
        raise MailboxError(f"cannot log in to {settings.host}:{settings.port}: {error}") from None
    result = PollResult()
    try:
        connection.create(_quoted(settings.processed))  # "already exists" is fine
        status, _ = connection.select(_quoted(settings.folder))
        if status != "OK":
            raise MailboxError(f"no folder {settings.folder!r}")
        status, data = connection.uid("SEARCH", None, "UNDELETED")
        uids = data[0].split()[:MAX_PER_POLL] if status == "OK" and data[0] else []
        can_move = "MOVE" in connection.capabilities
        for uid in uids:
            summary = _process(connection, uid)
            if summary is None:
                continue  # gone meanwhile (another poller took it), or not recorded
            result.read += 1
            result.summaries.append(summary)
            if _move(connection, uid, settings.processed, can_move):
                result.moved += 1
        if not can_move:
            connection.expunge()
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as error:
        raise MailboxError(f"mailbox error after {result.read} message(s): {error}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            connection.logout()
    return result


def _process(connection: imaplib.IMAP4, uid: bytes) -> str | None:
    limit = current_app.config["BOUNCE_MAX_SIZE"]
    status, data = connection.uid("FETCH", uid, "(RFC822.SIZE)")
    match = _SIZE.search(data[0] if status == "OK" and data and data[0] else b"")
    if match is None:
        return None
    size = int(match.group(1))
    try:
        if size > limit:  # not downloaded: recorded as too large, with its size
            with unit_of_work():
                outcome = intake.receive_oversized(size, BounceSource.IMAP)
        else:
            status, data = connection.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in data if isinstance(part, tuple)), None)
            if status != "OK" or raw is None:
                return None
            with unit_of_work():  # committed before the message is moved
                outcome = intake.receive_mail(raw, BounceSource.IMAP)
    except (OSError, imaplib.IMAP4.error, ssl.SSLError):
        raise
    except Exception:  # e.g. the database is down: leave the message where it is
        log.exception("bounce mailbox: uid %s not recorded; left in the mailbox", uid.decode())
        return None
    log.info("bounce mailbox: uid %s: %s", uid.decode(), outcome.summary)
    return outcome.summary


def _move(connection: imaplib.IMAP4, uid: bytes, folder: str, can_move: bool) -> bool:
    if can_move:
        return connection.uid("MOVE", uid, _quoted(folder))[0] == "OK"
    if connection.uid("COPY", uid, _quoted(folder))[0] != "OK":
        return False
    return connection.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")[0] == "OK"
