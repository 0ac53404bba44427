"""The checks a loaded configuration must pass before the app starts (settings that
are fine one by one but not together with the machine or each other)."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from newsletter.config import ENV_PREFIX, ConfigError
from newsletter.mail.relays import relays_from_config


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_instance_folder(path: str) -> None:
    """Create the instance folder, or stop with a line saying which setting moves it:
    the default inside an installed virtualenv is often not the service user's to write."""
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable by this user")
    except OSError as error:
        raise ConfigError(
            f"the instance folder {path} cannot be used ({error.strerror or error}); set "
            f"{ENV_PREFIX}INSTANCE_PATH to a folder this user may write, e.g. "
            "/var/lib/newsletter") from None


def check_dev_mailbox(config: Mapping[str, Any]) -> None:
    """/dev/mail shows every confirm and unsubscribe link: only ever in the dev stack."""
    if not config.get("DEV_MAILBOX"):
        return
    host = urlsplit(config["BASE_URL"]).hostname or ""
    if not config.get("DEBUG") or not _is_loopback(host):
        raise ConfigError(
            f"{ENV_PREFIX}DEV_MAILBOX is set, but /dev/mail (every mail's links, no login) "
            "exists only in the dev stack: debug on (FLASK_DEBUG=1) and a loopback "
            f"{ENV_PREFIX}BASE_URL. Unset {ENV_PREFIX}DEV_MAILBOX in production."
        )


# A lease must outlast a batch sent at the configured rate, with room to spare
# (the lease is renewed while a batch runs, but a shorter one means a stalled
# worker loses its rows half-way through every batch).
LEASE_MARGIN = 1.5


def check_send_settings(config: Mapping[str, Any]) -> None:
    """A batch may go out through any relay of the pool (and fail over to another
    mid-batch), each at its own rate or SEND_RATE: the lease must cover the slowest."""
    shared = config.get("SEND_RATE") or None  # unset: "" (no cap)
    rate, relay = shared, None
    for spec in relays_from_config(config):
        own = spec.rate or shared
        if own and (rate is None or own < rate):
            rate, relay = own, (spec if spec.rate else None)
    if not rate:
        return
    needed = LEASE_MARGIN * config["SEND_BATCH_SIZE"] / rate
    if config["SEND_LEASE"] < needed:
        at = (f"relay {relay.name!r}'s rate {rate:g}/s in {ENV_PREFIX}SMTP_RELAYS"
              if relay else f"{ENV_PREFIX}SEND_RATE={rate:g}/s")
        raise ConfigError(
            f"{ENV_PREFIX}SEND_LEASE={config['SEND_LEASE']} s cannot cover a batch of "
            f"{ENV_PREFIX}SEND_BATCH_SIZE={config['SEND_BATCH_SIZE']} at "
            f"{at} ({config['SEND_BATCH_SIZE'] / rate:g} s); set "
            f"the lease to at least {math.ceil(needed)} s or lower the batch size")
