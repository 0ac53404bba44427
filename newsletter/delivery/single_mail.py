"""Single mails (confirmation, welcome, notices, alerts, test sends) through the relay
pool, as a send's batches go: a relay by weight among those whose circuit is closed,
the next one when it cannot be reached. The circuits are the pool's (``relay.py``):
a relay a send found dead is skipped here too, and failures met here count there.

When every circuit is open the relay whose window ends first is tried anyway: a
single mail is one connection, and the reader waiting for a confirmation should not
wait for an editor to resume a send."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from newsletter.delivery.relay import RelayPool
from newsletter.mail.relays import relays_from_config
from newsletter.mail.transport import DeliveryResult, Outcome, SMTPTransport

log = logging.getLogger(__name__)


class PooledMail:
    """``app.extensions["smtp"]``: ``deliver_message`` like one relay's transport, with
    failover. Its connections are its own, apart from the batches'."""

    def __init__(self, config: Mapping[str, Any]):
        self.specs = relays_from_config(config)
        self.transports = {spec.name: SMTPTransport(config, spec) for spec in self.specs}

    def deliver_message(self, message: EmailMessage,
                        envelope_from: str | None = None) -> DeliveryResult:
        """Never raises; the result of the last relay tried (UNREACHABLE: none took it)."""
        pool = RelayPool(self.transports, self.specs)
        tried: set[str] = set()
        result = None
        while len(tried) < len(self.transports):
            transport = pool.choose(tried)
            if transport is None:
                if tried:
                    break  # the rest have open circuits: this mail's task retries later
                transport = pool.first_to_probe()
            tried.add(transport.name)
            result = transport.deliver_message(message, envelope_from)
            if result.outcome is not Outcome.UNREACHABLE:
                if result.code is not None:  # the relay answered (not a mail never built)
                    pool.answered(transport.name)
                return result
            pool.failed(transport.name)
            log.warning("relay %s unreachable for a single mail (%s)", transport.name,
                        result.detail)
        return result

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
