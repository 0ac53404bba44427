"""The relays a send may use: ``NEWSLETTER_SMTP_RELAYS`` (a JSON list) or, without it,
the one relay of the ``NEWSLETTER_SMTP_*`` settings.

Each relay has a name (``host:port`` unless given), which the ledger records on each
row it carried and the metrics and circuit breaker use."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECURITY_MODES = ("none", "starttls", "ssl")
_FIELDS = {"name", "host", "port", "security", "username", "password", "weight", "rate"}


@dataclass(frozen=True)
class RelaySpec:
    name: str
    host: str
    port: int
    security: str = "none"
    username: str = ""
    password: str = ""
    weight: float = 1.0
    rate: float | None = None  # messages per second through this relay, across workers

    def __repr__(self) -> str:  # never the password
        return f"RelaySpec({self.name!r})"


def parse_relays(value: str) -> tuple[RelaySpec, ...]:
    """``[{"host": "smtp-a.example.com", "port": 587, "security": "starttls",
    "username": "u", "password": "p", "weight": 2, "rate": 50}, ...]``; empty: none."""
    text = str(value).strip()
    if not text:
        return ()
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(items, list) or not items:
        raise ValueError("expected a JSON list of relays such as "
                         '[{"host": "smtp.example.com", "port": 587, "weight": 1}]')
    relays = [_relay(item, number) for number, item in enumerate(items, 1)]
    names = [relay.name for relay in relays]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise ValueError(f"two relays are named {duplicate!r}; give each a distinct name")
    return tuple(relays)


def _relay(item: Any, number: int) -> RelaySpec:
    where = f"relay {number}"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not a JSON object")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ValueError(f"{where} has an unknown field {unknown[0]!r} "
                         f"(known: {', '.join(sorted(_FIELDS))})")
    host = item.get("host")
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host.strip()):
        raise ValueError(f"{where} has no host")
    port = item.get("port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{where}: port must be a whole number from 1 to 65535, got {port!r}")
    security = item.get("security", "none")
    if security not in SECURITY_MODES:
        raise ValueError(f"{where}: unknown security mode {security!r} "
                         f"(choose {', '.join(SECURITY_MODES)})")
    weight = _positive(item.get("weight", 1), f"{where}: weight")
    rate = item.get("rate")
    rate = None if rate is None else _positive(rate, f"{where}: rate")
    for field in ("username", "password", "name"):
        if not isinstance(item.get(field, ""), str):
            raise ValueError(f"{where}: {field} must be a string")
    name = item.get("name", "").strip() or f"{host.strip()}:{port}"
    if not name.isprintable() or len(name) > 100:
        raise ValueError(f"{where}: name must be printable and at most 100 characters")
    return RelaySpec(name=name, host=host.strip(), port=port, security=security,
                     username=item.get("username", ""), password=item.get("password", ""),
                     weight=weight, rate=rate)


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value <= 0:
        raise ValueError(f"{what} must be a number above 0, got {value!r}")
    return float(value)


def relays_from_config(config: Mapping[str, Any]) -> tuple[RelaySpec, ...]:
    """The configured pool; the single relay of the SMTP_* settings without one."""
    if config.get("SMTP_RELAYS"):
        return tuple(config["SMTP_RELAYS"])
    return (RelaySpec(name=f"{config['SMTP_HOST']}:{config['SMTP_PORT']}",
                      host=config["SMTP_HOST"], port=config["SMTP_PORT"],
                      security=config["SMTP_SECURITY"], username=config["SMTP_USERNAME"],
                      password=config["SMTP_PASSWORD"]),)
