"""One webhook attempt: a signed POST under the feed fetcher's address policy.

Nothing here touches the database. Every way an endpoint can misbehave (an address
that is not allowed, a refused connection, a TLS error, a redirect, a status other
than 2xx, an answer over the size cap, no answer before the deadline) is an
``Answer`` with ``ok=False`` and a short reason, never an exception and never a
worker held past the deadline. Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import time
from dataclasses import dataclass

from newsletter.content.feeds import (
    FetchError,
    FetchPolicy,
    checked_connection,
    cut_off_at,
    read_capped,
)

USER_AGENT = "newsletter-webhooks/1"
SIGNATURE_HEADER = "Newsletter-Signature"


@dataclass(frozen=True)
class Answer:
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None = None


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """hex HMAC-SHA256(secret, "<timestamp>.<raw body>")."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def post(url: str, body: bytes, secret: bytes, event_id: str, policy: FetchPolicy) -> Answer:
    started = time.monotonic()
    deadline = started + policy.deadline
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Newsletter-Event-Id": event_id,
               SIGNATURE_HEADER: signature_header(secret, body)}

    def answer(ok: bool, status: int | None, error: str | None = None) -> Answer:
        return Answer(ok, status, int((time.monotonic() - started) * 1000),
                      error and error[:500])

    try:
        connection, target = checked_connection(url, policy, deadline)
    except FetchError as error:
        return answer(False, None, str(error))
    except TimeoutError:
        return answer(False, None, f"no answer within {policy.deadline:g} s")
    status = None
    try:
        with cut_off_at(deadline, connection) as expired:
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                status = response.status
                if 300 <= status < 400:
                    return answer(False, status, f"HTTP {status}: redirects are not followed")
                if not 200 <= status < 300:
                    return answer(False, status, f"HTTP {status}")
                read_capped(response, policy.max_bytes, deadline)
                if expired.is_set():
                    raise TimeoutError
                return answer(True, status)
            except FetchError as error:  # the answer's body is over the cap
                return answer(False, status, str(error))
            except (OSError, ValueError, http.client.HTTPException) as error:
                if expired.is_set() or isinstance(error, TimeoutError):
                    return answer(False, status, f"no answer within {policy.deadline:g} s")
                if isinstance(error, ssl.SSLError):
                    return answer(False, status, f"TLS: {error}")
                return answer(False, status, f"request failed: {error}")
    except TimeoutError:  # the deadline passed before the watchdog started
        return answer(False, status, f"no answer within {policy.deadline:g} s")
    finally:
        connection.close()
