"""SMTP transport: one reused connection per process, reconnecting when it drops.

``deliver`` never raises: whatever happens to one recipient (a refusal, an address
the relay cannot carry, a dropped connection, a bug) becomes that recipient's
``DeliveryResult``, and the connection is reset or reopened for the next one.

International addresses: domains always go on the wire in their ASCII (IDNA)
form; a non-ASCII local part needs the relay's SMTPUTF8 extension (RFC 6531),
and without it the recipient fails with a clear reason instead of an exception.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import smtplib
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import idna

from newsletter.mail.relays import RelaySpec, relays_from_config

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    SENT = "sent"  # 250 after DATA
    DEFERRED = "deferred"  # 4xx for this recipient, or the connection dropped: try again later
    FAILED = "failed"  # permanent for this message (5xx, policy, an address we cannot send)
    BOUNCED = "bounced"  # the address is gone: 5.1.x, or 550/551/553 without an enhanced code
    UNKNOWN = "unknown"  # connection lost after DATA: maybe delivered
    # Could not connect, start TLS or log in, or the relay refused service before
    # the transaction: says nothing about the recipient.
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    detail: str = ""
    code: int | None = None  # the SMTP reply code, when the server answered
    enhanced: str | None = None  # the RFC 3463 enhanced status code, e.g. "5.1.1"


NO_SMTPUTF8 = "the relay does not support SMTPUTF8, needed for a non-ASCII address"

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
# Refusals about us (a blocklist, content, a policy), not about the address.
_POLICY = re.compile(r"\b(block(ed|list)?|black ?list(ed)?|deny ?list(ed)?|spam\w*|polic(y|ies)"
                     r"|reputation|dnsbl|rbl|spamhaus)\b", re.IGNORECASE)
# Replies to MAIL FROM that refuse us as a client: the relay, not the recipient.
_RELAY_REFUSALS = {421, 454, 530, 534, 535}


def enhanced_code(text: str) -> str | None:
    """The enhanced status code a reply text starts with, e.g. ``"5.1.1"``."""
    match = _ENHANCED.match(text.strip())
    return ".".join(match.groups()) if match else None


def classify(code: int, text: str, stage: str) -> Outcome:
    """What a refusal means; ``stage`` is the command refused: mail, rcpt, data or message
    (the reply after the message's final dot)."""
    enhanced = enhanced_code(text)
    if stage == "mail" and code in _RELAY_REFUSALS:
        return Outcome.UNREACHABLE
    if code < 500:  # 4xx, and smtplib's -1 for an unreadable reply
        return Outcome.DEFERRED
    if code >= 600:
        return Outcome.FAILED
    if (enhanced or "").startswith("5.7.") or _POLICY.search(text):
        return Outcome.FAILED  # for this issue only: the reader stays subscribed
    if stage in ("rcpt", "message") and (enhanced or "").startswith("5.1."):
        return Outcome.BOUNCED
    if stage == "rcpt" and enhanced is None and code in (550, 551, 553):
        return Outcome.BOUNCED
    return Outcome.FAILED


def _text(text: bytes | str) -> str:
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def _result(outcome: Outcome, code: int, text: bytes | str, prefix: str = "") -> DeliveryResult:
    text = _text(text)
    return DeliveryResult(outcome, f"{prefix}{code} {text}"[:500], code if code > 0 else None,
                          enhanced_code(text))


def ascii_domain(domain: str) -> str:
    """A domain in its on-the-wire form: A-labels (IDNA 2008, UTS 46 mapping)."""
    if domain.isascii():
        return domain
    if domain.startswith("[") and domain.endswith("]"):
        raise ValueError(f"address literal {domain!r} is not ASCII")
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as error:
        raise ValueError(f"domain {domain!r} has no ASCII (IDNA) form: {error}") from None


def wire_address(addr_spec: str) -> str:
    """``local@domain`` with the domain in ASCII; the local part is kept as it is."""
    local, at, domain = addr_spec.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{addr_spec!r} is not an email address")
    return f"{local}@{ascii_domain(domain)}"


def header_address(address: Address) -> tuple[Address, bool]:
    """The address for a To/From header, and whether the header needs UTF-8 (RFC 6532).

    An IDN domain goes in as A-labels, so the header stays ASCII; only a non-ASCII
    local part makes a UTF-8 header, which only an SMTPUTF8 transaction may carry.
    """
    local, _, domain = wire_address(address.addr_spec).rpartition("@")
    return Address(address.display_name, local, domain), not local.isascii()


# smtplib parses every envelope address again (email.utils.parseaddr) and scans every
# message for lines to dot-stuff: a tenth of a digest message's cost. A plain address
# (nothing to quote or strip) is written as it is; anything else takes smtplib's own
# path. The message goes out as smtplib would send it (dot-stuffed, CRLF.CRLF after it),
# built here so that a caller that knows no line starts with "." skips the scan.
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"\\]+@[^\s<>()\[\],;:\"\\@]+")
_LINE_STARTING_WITH_DOT = re.compile(rb"(?m)^\.")


def _command(connection: smtplib.SMTP, verb: str, prefix: str, address: str,
             options: list[str] = ()) -> tuple[int, bytes]:
    """MAIL FROM or RCPT TO; the reply."""
    if not _PLAIN_ADDRESS.fullmatch(address):
        return connection.mail(address, options) if verb == "mail" else connection.rcpt(address)
    if "SMTPUTF8" in options:  # as smtplib does: the commands go in UTF-8 from here
        connection.command_encoding = "utf-8"
    connection.putcmd(verb, f"{prefix}<{address}>" + "".join(" " + o for o in options))
    return connection.getreply()


def wire_content(data: bytes, dot_free: bool = False) -> bytes:
    """The message as it goes after DATA: lines starting with "." doubled (RFC 5321
    4.5.2), then CRLF.CRLF. ``dot_free``: the caller knows no line starts with "."."""
    if not dot_free and (data.startswith(b".") or b"\n." in data):
        data = _LINE_STARTING_WITH_DOT.sub(b"..", data)
    return data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")


class SMTPTransport:
    """One relay: the given one, else the first of the pool (the one relay of the
    SMTP_* settings without a pool)."""

    def __init__(self, config: Mapping[str, Any], relay: RelaySpec | None = None):
        relay = relay or relays_from_config(config)[0]
        self.name = relay.name  # in metrics, the breaker and the ledger
        self.host = relay.host
        self.port = relay.port
        self.security = relay.security
        self.username = relay.username
        self.password = relay.password
        self.timeout = config["SMTP_TIMEOUT"]
        self.ca_file = config.get("SMTP_CA_FILE") or None  # None: the system's trusted CAs
        self._connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()
        self._stage = "mail"  # the command in progress, to classify a failure

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def _connect(self) -> smtplib.SMTP:
        """Connect, greet, start TLS, log in; any failure here is UNREACHABLE."""
        if self.security == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._tls_context()
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            connection.ehlo_or_helo_if_needed()  # a 421 here means the relay turned us away
            if self.security == "starttls":
                connection.starttls(context=self._tls_context())
                connection.ehlo()
            if self.username:
                connection.login(self.username, self.password)
        except BaseException:
            connection.close()
            raise
        return connection

    def deliver(self, sender: str, recipient: str, data: bytes, *,
                dot_free: bool = False) -> DeliveryResult:
        """Send one prepared message and say what the server did with it; never raises.
        ``dot_free``: the caller built ``data`` so that no line starts with "." (header
        lines and base64), and the scan for lines to dot-stuff is skipped."""
        with self._lock:
            try:
                envelope = (wire_address(sender), wire_address(recipient))
            except ValueError as error:
                return DeliveryResult(Outcome.FAILED, f"address cannot be sent: {error}")
            try:
                return self._deliver_reconnecting(*envelope, data, wire_content(data, dot_free))
            except (smtplib.SMTPServerDisconnected, OSError) as error:
                self.close()
                return DeliveryResult(Outcome.DEFERRED, f"connection: {error}")
            except smtplib.SMTPResponseException as error:
                self.close()
                return _result(classify(error.smtp_code, _text(error.smtp_error), self._stage),
                               error.smtp_code, error.smtp_error)
            except Exception as error:  # one recipient's trouble is never the batch's
                self.close()  # the transaction may be half done: start clean next time
                log.exception("delivery to %r failed unexpectedly", recipient)
                return DeliveryResult(Outcome.FAILED, f"{type(error).__name__}: {error}"[:500])

    def deliver_message(self, message: EmailMessage,
                        envelope_from: str | None = None) -> DeliveryResult:
        """A single built message (confirmation, welcome, test): the recipient from its
        headers, the envelope sender given (a VERP address) or its From.

        Never raises either: an address the message cannot carry is a FAILED result.
        """
        try:
            sender = envelope_from or message["From"].addresses[0].addr_spec
            to, utf8 = header_address(message["To"].addresses[0])
            if to.addr_spec != message["To"].addresses[0].addr_spec:
                message.replace_header("To", to)  # IDN domain: the header says it in ASCII
            data = message.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
        except Exception as error:
            log.warning("message not built: %s", error)
            return DeliveryResult(Outcome.FAILED, f"message not built: {error}"[:500])
        return self.deliver(sender, to.addr_spec, data)

    def _deliver_reconnecting(self, sender: str, recipient: str, data: bytes,
                              content: bytes) -> DeliveryResult:
        if self._connection is not None:
            try:
                result = self._deliver_once(self._connection, sender, recipient, data, content)
                if result.outcome is not Outcome.UNREACHABLE:
                    return result
                # e.g. "421 idle timeout" read as the answer to MAIL: try a fresh connection
            except (smtplib.SMTPServerDisconnected, OSError):
                # An idle connection the server dropped before the message went (after,
                # it is caught inside as UNKNOWN): nothing was accepted, so retry once.
                pass
            self.close()
        try:
            self._connection = self._connect()
        except (smtplib.SMTPException, OSError) as error:  # 421 greeting, 535 login, TLS, ...
            self.close()
            return self._unreachable(error)
        try:
            return self._deliver_once(self._connection, sender, recipient, data, content)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self.close()
            if self._stage == "mail":  # a fresh connection dropped before any transaction
                return DeliveryResult(Outcome.UNREACHABLE, f"relay dropped the connection: "
                                                           f"{error}")
            raise

    def _unreachable(self, error: smtplib.SMTPException | OSError) -> DeliveryResult:
        """Connecting, TLS or login failed; the detail says why in words an operator can
        act on (the send loop and the outbox log it)."""
        if isinstance(error, smtplib.SMTPResponseException):
            return _result(Outcome.UNREACHABLE, error.smtp_code, error.smtp_error,
                           "relay unreachable: ")
        return DeliveryResult(Outcome.UNREACHABLE,
                              f"relay unreachable: {self._reason(error)}"[:500])

    def _reason(self, error: smtplib.SMTPException | OSError) -> str:
        if isinstance(error, ssl.SSLCertVerificationError):
            hint = ("" if self.ca_file else
                    "; a relay signed by a private CA needs NEWSLETTER_SMTP_CA_FILE")
            return f"TLS: {error.reason}: {error.verify_message}{hint}"
        if isinstance(error, ssl.SSLError):
            return f"TLS: {error}"
        return str(error) or type(error).__name__

    def _deliver_once(self, connection: smtplib.SMTP, sender: str, recipient: str,
                      data: bytes, content: bytes) -> DeliveryResult:
        self._stage = "mail"
        connection.ehlo_or_helo_if_needed()
        connection.command_encoding = "ascii"  # smtplib leaves it utf-8 after an SMTPUTF8 mail
        options = []
        if not (sender.isascii() and recipient.isascii()):
            if not connection.has_extn("smtputf8"):
                return DeliveryResult(Outcome.FAILED, NO_SMTPUTF8)
            options.append("SMTPUTF8")
        if not data.isascii() and connection.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if (connection.has_extn("pipelining") and _PLAIN_ADDRESS.fullmatch(sender)
                and _PLAIN_ADDRESS.fullmatch(recipient)):
            return self._deliver_pipelined(connection, sender, recipient, options, content)
        code, text = _command(connection, "mail", "FROM:", sender, options)
        if code != 250:
            return self._refused(connection, code, text, "mail")
        self._stage = "rcpt"
        code, text = _command(connection, "rcpt", "TO:", recipient)
        if code not in (250, 251):
            return self._refused(connection, code, text, "rcpt")
        self._stage = "data"
        connection.putcmd("data")
        code, text = connection.getreply()
        if code != 354:  # DATA itself refused: nothing was sent
            return self._refused(connection, code, text, "data")
        return self._send_content(connection, content)

    def _deliver_pipelined(self, connection: smtplib.SMTP, sender: str, recipient: str,
                           options: list[str], content: bytes) -> DeliveryResult:
        """MAIL, RCPT and DATA in one write (RFC 2920: the relay advertised PIPELINING),
        then their replies in order; the first refusal is the result, as if the commands
        had gone one by one. Two round trips per message instead of four."""
        if "SMTPUTF8" in options:  # as smtplib does: the commands go in UTF-8 from here
            connection.command_encoding = "utf-8"
        extra = "".join(" " + option for option in options)
        connection.send(f"MAIL FROM:<{sender}>{extra}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        refusal = None  # (code, text, stage) of the first command refused
        for stage, accepted in (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,))):
            if refusal is None:
                self._stage = stage  # a drop here: nothing was accepted, the caller retries
                code, text = connection.getreply()
            else:  # replies to commands after a refusal (503 or 554), read to stay in step
                try:
                    code, text = connection.getreply()
                except (smtplib.SMTPServerDisconnected, OSError):
                    self.close()
                    return _result(classify(refusal[0], _text(refusal[1]), refusal[2]),
                                   refusal[0], refusal[1])
            if code == 421 or code < 0:  # the server is closing: no more replies come
                self.close()
                code, text, stage = refusal or (code, text, stage)
                return _result(classify(code, _text(text), stage), code, text)
            if code not in accepted and refusal is None:
                refusal = (code, text, stage)
        if refusal is None:
            return self._send_content(connection, content)
        if code == 354:  # DATA taken after a refusal (RFC 2920 3.1): end an empty message
            try:
                connection.send(b".\r\n")
                connection.getreply()
            except (smtplib.SMTPServerDisconnected, OSError):
                self.close()
        return self._refused(connection, *refusal)

    def _send_content(self, connection: smtplib.SMTP, content: bytes) -> DeliveryResult:
        """After 354: the message and its final dot; the reply says what became of it."""
        try:
            connection.send(content)
            code, text = connection.getreply()
        except Exception as error:  # lost mid-message: the server may have it
            self.close()
            return DeliveryResult(Outcome.UNKNOWN, f"connection lost after DATA: {error}")
        if code == 250:
            return _result(Outcome.SENT, code, text)
        return self._refused(connection, code, text, "message")

    def _refused(self, connection: smtplib.SMTP, code: int, text, stage: str) -> DeliveryResult:
        if code == 421 or code < 0:  # the server is closing the connection
            self.close()
        elif stage != "message":
            try:
                connection.rset()  # leave no half transaction for the next recipient
            except (smtplib.SMTPException, OSError):
                self.close()
        return _result(classify(code, _text(text), stage), code, text)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None
