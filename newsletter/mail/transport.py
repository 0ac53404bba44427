"""SMTP transport: one reused connection per process, reconnecting when it drops."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any


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

    def send(self, message: EmailMessage) -> None:
        """Send one message; raises smtplib errors after one reconnect attempt."""
        with self._lock:
            for attempt in (1, 2):
                if self._connection is None:
                    self._connection = self._connect()
                try:
                    self._connection.send_message(message)
                    return
                except (smtplib.SMTPServerDisconnected, ConnectionError):
                    # A reused connection the server closed while idle: retry once on a
                    # fresh one. The message was not accepted, so this cannot duplicate it.
                    self.close()
                    if attempt == 2:
                        raise

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._connection = None
