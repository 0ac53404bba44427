"""Webhook endpoints: where events go, which ones, and the secret that signs them.

A URL is somebody's input and is fetched by our workers, so it obeys the feed
fetcher's address policy (``content/feeds.py``): http(s) only, and a host that
resolves to a public address unless NEWSLETTER_WEBHOOK_ALLOW_PRIVATE is set. It is
checked when added and again at each delivery (DNS may answer differently later).
Secrets are stored sealed (Fernet) under the same key as editors' TOTP secrets.

An endpoint is enabled or disabled; ``DISABLE`` and ``ENABLE`` below are its only
changes, made here.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import delete, select, update

from newsletter.config import totp_keys
from newsletter.content.feeds import FetchError, FetchPolicy, checked_connection
from newsletter.extensions import db
from newsletter.models import WebhookDelivery, WebhookEndpoint, utcnow
from newsletter.webhooks.events import EVENT_TYPES

MIN_SECRET_BYTES = 16
MAX_SECRET_CHARS = 200
MAX_URL_CHARS = 2000
# What NEWSLETTER_WEBHOOK_ALLOW_PRIVATE opens: loopback, private and CGNAT networks
# (an intranet receiver). Never link-local (169.254.169.254 is the cloud's metadata
# service, with the machine's credentials), 0.0.0.0, multicast or reserved addresses.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(network) for network in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "::1/128", "fc00::/7"))


class WebhookError(ValueError):
    """Bad input for an endpoint; the message says what to change."""


def fetch_policy(config) -> FetchPolicy:
    return FetchPolicy(allow_http=True,
                       allowed_networks=PRIVATE_NETWORKS if config["WEBHOOK_ALLOW_PRIVATE"] else (),
                       deadline=config["WEBHOOK_DEADLINE"],
                       max_bytes=config["WEBHOOK_MAX_RESPONSE_BYTES"],
                       connect_timeout=config["WEBHOOK_CONNECT_TIMEOUT"])


def check_url(url: str) -> str:
    """The URL as stored, or WebhookError: not http(s), no host, credentials in it,
    or a host that resolves to an address the policy refuses."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise WebhookError(f"Give the endpoint's URL (at most {MAX_URL_CHARS} characters).")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise WebhookError("The URL holds spaces or control characters.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WebhookError(f"{url[:200]!r} is not an http(s) URL with a host.")
    if parts.username or parts.password:
        raise WebhookError("Put no user name or password in the URL: requests are signed.")
    config = current_app.config
    try:
        connection, _ = checked_connection(url, fetch_policy(config),
                                           time.monotonic() + config["WEBHOOK_DEADLINE"])
    except FetchError as error:
        hint = ("" if config["WEBHOOK_ALLOW_PRIVATE"]
                else " (NEWSLETTER_WEBHOOK_ALLOW_PRIVATE=true allows private networks)")
        raise WebhookError(f"{error}{hint}") from None
    except TimeoutError:
        raise WebhookError(f"{parts.hostname} did not resolve in time.") from None
    connection.close()
    return url


def check_events(events) -> list[str]:
    """A list of known event names (a comma-separated string or a list), in order."""
    if isinstance(events, str):
        events = events.split(",")
    if not isinstance(events, list | tuple) or not all(isinstance(e, str) for e in events):
        raise WebhookError("Give the events as a list of names.")
    wanted = list(dict.fromkeys(event.strip() for event in events if event.strip()))
    if not wanted:
        raise WebhookError(f"Name at least one event: {', '.join(EVENT_TYPES)}.")
    unknown = [event for event in wanted if event not in EVENT_TYPES]
    if unknown:
        raise WebhookError(f"Unknown event {unknown[0][:64]!r}: choose from "
                           f"{', '.join(EVENT_TYPES)}.")
    return wanted


def check_secret(secret: str | None) -> str | None:
    if secret is None:
        return None
    if not isinstance(secret, str):
        raise WebhookError("The secret must be text.")
    if len(secret.encode()) < MIN_SECRET_BYTES or len(secret) > MAX_SECRET_CHARS:
        raise WebhookError(f"A secret has at least {MIN_SECRET_BYTES} bytes "
                           f"(and at most {MAX_SECRET_CHARS} characters).")
    if not secret.isprintable() or secret != secret.strip():
        raise WebhookError("A secret has no control characters and no surrounding spaces.")
    return secret


def _keys() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in totp_keys(current_app.config)])


def unsealed_secret(endpoint: WebhookEndpoint) -> bytes | None:
    """The signing secret, or None when no configured key opens it."""
    try:
        return _keys().decrypt(endpoint.secret_sealed.encode())
    except InvalidToken:
        return None


def add(url: str, events, secret: str | None = None) -> tuple[WebhookEndpoint, str | None]:
    """A new endpoint; returns it and the secret when one was generated (shown once).
    Everything is checked before anything is written."""
    url, events, secret = check_url(url), check_events(events), check_secret(secret)
    generated = None
    if secret is None:
        secret = generated = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(url=url, events=events,
                               secret_sealed=_keys().encrypt(secret.encode()).decode())
    db.session.add(endpoint)
    db.session.flush()
    return endpoint, generated


def list_all() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get(endpoint_id: int) -> WebhookEndpoint | None:
    return db.session.get(WebhookEndpoint, endpoint_id)


def remove(endpoint_id: int) -> bool:
    """The endpoint and its delivery log; its events stay for other endpoints."""
    if db.session.get(WebhookEndpoint, endpoint_id) is None:
        return False
    db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    db.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    return True


def reseal_all() -> tuple[int, int]:
    """Re-encrypt every secret with the current key; returns (resealed, unreadable)."""
    keys, done, unreadable = _keys(), 0, 0
    for endpoint in list_all():
        try:
            endpoint.secret_sealed = keys.rotate(endpoint.secret_sealed.encode()).decode()
            done += 1
        except InvalidToken:
            unreadable += 1
    return done, unreadable


# An endpoint's two changes: each a conditional UPDATE, so of two workers that find
# it failing, one disables it (and only that one tells the owners).
DISABLE = (WebhookEndpoint.disabled_at.is_(None),)
ENABLE = (WebhookEndpoint.disabled_at.is_not(None),)


def disable(endpoint_id: int, reason: str) -> bool:
    return db.session.execute(update(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, *DISABLE).values(
        disabled_at=utcnow(), disabled_reason=reason[:200])).rowcount == 1


def enable(endpoint_id: int) -> bool:
    """Back on (an owner fixed the receiver); its failures are forgotten."""
    return db.session.execute(update(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, *ENABLE).values(
        disabled_at=None, disabled_reason=None, failing_since=None)).rowcount == 1


def failed_attempt(endpoint_id: int) -> None:
    db.session.execute(update(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None)).values(
        failing_since=utcnow()))


def delivered(endpoint_id: int) -> None:
    db.session.execute(update(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None)).values(
        failing_since=None))
