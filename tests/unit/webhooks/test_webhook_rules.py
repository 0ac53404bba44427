"""The pure rules of outgoing webhooks: the signature, event names and secrets."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from newsletter.content.feeds import address_allowed
from newsletter.webhooks.endpoints import WebhookError, check_events, check_secret, fetch_policy
from newsletter.webhooks.events import EVENT_TYPES
from newsletter.webhooks.sender import signature_header


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":"evt_1","type":"issue.sent","created":"2026-12-03T15:00:00Z","data":{}}'
    header = signature_header(b"secret-of-16-bytes", body, timestamp=1764774000)
    expected = hmac.new(b"secret-of-16-bytes", b"1764774000." + body, hashlib.sha256)
    assert header == f"t=1764774000,v1={expected.hexdigest()}"
    # Another body, timestamp or secret gives another signature.
    assert header != signature_header(b"secret-of-16-bytes", body + b" ", timestamp=1764774000)
    assert header != signature_header(b"secret-of-16-bytes", body, timestamp=1764774001)
    assert header != signature_header(b"other-secret-16-b", body, timestamp=1764774000)


def test_events_are_known_names_in_order_without_repeats():
    assert check_events("issue.sent, subscriber.bounced,issue.sent") == [
        "issue.sent", "subscriber.bounced"]
    assert check_events(list(EVENT_TYPES)) == list(EVENT_TYPES)
    assert "sequence.step_sent" in EVENT_TYPES


@pytest.mark.parametrize(("events", "message"), [
    ("", "at least one event"), ([], "at least one event"), ("issue.*", "Unknown event"),
    (["issue.sent", 3], "list of names"), ({"issue.sent": 1}, "list of names"),
])
def test_bad_event_lists_are_refused(events, message):
    with pytest.raises(WebhookError, match=message):
        check_events(events)


@pytest.mark.parametrize(("secret", "message"), [
    ("fifteen-bytes!!", "at least 16 bytes"), ("é" * 7, "at least 16 bytes"),
    ("x" * 201, "at most 200"), (" sixteen-bytes-ok", "surrounding spaces"),
    ("sixteen-bytes\tok", "control characters"), (1234567890123456789, "must be text"),
])
def test_bad_secrets_are_refused(secret, message):
    with pytest.raises(WebhookError, match=message):
        check_secret(secret)


def test_a_secret_is_counted_in_bytes():
    assert check_secret("é" * 8) == "é" * 8  # 16 bytes in UTF-8
    assert check_secret(None) is None


@pytest.mark.parametrize("address, allowed", [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.20.0.5", True), ("192.168.1.10", True),
    ("100.64.0.1", True), ("::1", True), ("fd00::5", True), ("93.184.215.14", True),
    ("169.254.169.254", False),  # the cloud's metadata service
    ("fe80::1", False), ("0.0.0.0", False), ("::", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::ffff:169.254.169.254", False),
])
def test_allowing_private_networks_never_opens_link_local(address, allowed):
    policy = fetch_policy({"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_DEADLINE": 5.0,
                           "WEBHOOK_MAX_RESPONSE_BYTES": 1024, "WEBHOOK_CONNECT_TIMEOUT": 1.0})
    assert address_allowed(ipaddress.ip_address(address), policy) is allowed
