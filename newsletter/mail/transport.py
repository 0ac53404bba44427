"""SMTP transport: one reused connection per process, reconnecting when it drops."""

from __future__ import annotations

import contextlib
import enum
import smtplib
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any


class Outcome(enum.Enum):
    SENT = "sent"  # 250 after DATA
    DEFERRED = "deferred"  # 4xx, or no connection: try again later
    FAILED = "failed"  # 5xx: do not try again
    BOUNCED = "bounced"  # 5xx on RCPT: the address does not exist
    UNKNOWN = "unknown"  # connection lost after DATA: maybe delivered
    # Could not connect, start TLS or log in: says nothing about the recipient.
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    detail: str = ""


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {text}"[:500]


class SMTPTransport:
    def __init__(self, config: Mapping[str, Any]):
        self.host = config["SMTP_HOST"]
        self.port = config["SMTP_PORT"]
        self.security = config["SMTP_SECURITY"]
        self.username = config["SMTP_USERNAME"]
        self.password = config["SMTP_PASSWORD"]
        self.timeout = config["SMTP_TIMEOUT"]
        self._connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                connection.starttls(context=ssl.create_default_context())
        if self.username:
            connection.login(self.username, self.password)
        return connection

    def deliver(self, sender: str, recipient: str, data: bytes) -> DeliveryResult:
        """Send one prepared message and say what the server did with it; never raises."""
        with self._lock:
            try:
                return self._deliver_reconnecting(sender, recipient, data)
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as error:
                self.close()
                return DeliveryResult(Outcome.DEFERRED, f"connection: {error}")
            except smtplib.SMTPException as error:
                self.close()
                return DeliveryResult(Outcome.DEFERRED, f"{type(error).__name__}: {error}")

    def deliver_message(self, message: EmailMessage) -> DeliveryResult:
        """A single built message (confirmation, welcome, test): envelope from its headers."""
        return self.deliver(message["From"].addresses[0].addr_spec,
                            message["To"].addresses[0].addr_spec,
                            message.as_bytes(policy=policy.SMTP))

    def _deliver_reconnecting(self, sender: str, recipient: str, data: bytes) -> DeliveryResult:
        if self._connection is not None:
            try:
                return self._deliver_once(self._connection, sender, recipient, data)
            except (smtplib.SMTPServerDisconnected, OSError):
                # An idle connection the server dropped, before DATA (after DATA is
                # caught inside as UNKNOWN): nothing was accepted, so retry once.
                self.close()
        try:
            self._connection = self._connect()
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            return DeliveryResult(Outcome.UNREACHABLE, f"relay unreachable: {error}")
        return self._deliver_once(self._connection, sender, recipient, data)

    def _deliver_once(self, connection: smtplib.SMTP, sender: str, recipient: str,
                      data: bytes) -> DeliveryResult:
        connection.ehlo_or_helo_if_needed()
        code, text = connection.mail(sender)
        if code != 250:
            return self._refused(connection, code, text, at_rcpt=False)
        code, text = connection.rcpt(recipient)
        if code not in (250, 251):
            return self._refused(connection, code, text, at_rcpt=True)
        try:
            code, text = connection.data(data)
        except smtplib.SMTPDataError as error:  # DATA itself refused: nothing was sent
            return self._refused(connection, error.smtp_code, error.smtp_error, at_rcpt=False)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            self.close()
            return DeliveryResult(Outcome.UNKNOWN, f"connection lost after DATA: {error}")
        if code == 250:
            return DeliveryResult(Outcome.SENT, _reply(code, text))
        return self._refused(connection, code, text, at_rcpt=False, after_data=True)

    def _refused(self, connection: smtplib.SMTP, code: int, text, *, at_rcpt: bool,
                 after_data: bool = False) -> DeliveryResult:
        detail = _reply(code, text)
        if code == 421 or code < 0:  # the server is closing the connection
            self.close()
        elif not after_data:
            try:
                connection.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
        if 400 <= code < 500 or code < 0:
            return DeliveryResult(Outcome.DEFERRED, detail)
        if at_rcpt and code in (550, 551, 553):
            return DeliveryResult(Outcome.BOUNCED, detail)
        return DeliveryResult(Outcome.FAILED, detail)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._connection = None
