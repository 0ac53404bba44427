"""The figures processes measure as they work, for ``GET /metrics``: SMTP send time and
batch duration (workers), HTTP requests and their latency (web).

With ``PROMETHEUS_MULTIPROC_DIR`` set (to the same empty folder for web and workers on a
host, before they start) prometheus-client writes these to files there and ``/metrics``
adds up every process's; without it each process keeps its own and ``/metrics`` shows
the web process's only (docs/operations.md#metrics).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds: a relay answers in milliseconds when near, a second or more when far or busy.
_SMTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

SMTP_SEND_SECONDS = Histogram(
    "newsletter_smtp_send_seconds", "Time one digest message took at the relay, by result.",
    ["relay", "outcome"], buckets=_SMTP_BUCKETS)
BATCH_SECONDS = Histogram(
    "newsletter_batch_seconds", "Time one send batch took, from claim to its last result.",
    buckets=_BATCH_BUCKETS)
HTTP_REQUESTS = Counter(
    "newsletter_http_requests", "HTTP requests answered, by route and status.",
    ["method", "route", "status"])
HTTP_REQUEST_SECONDS = Histogram(
    "newsletter_http_request_seconds", "Time to answer an HTTP request, by route.",
    ["method", "route"])
