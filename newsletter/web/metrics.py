"""``GET /metrics``: Prometheus exposition, for an API token with the scope
``metrics:read`` (no token 401, another scope 403; nothing is computed before the token
is checked). Also counts every HTTP request the app answers, and its latency.

Without a token, put the endpoint on an address only Prometheus reaches instead
(docs/operations.md#metrics).
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from newsletter.delivery.metrics import Figures
from newsletter.instruments import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from newsletter.web.api import requires_scope

bp = Blueprint("metrics", __name__)


class _ThisProcess:
    """This process's own instruments (single-process mode)."""

    def collect(self):
        yield from REGISTRY.collect()


@bp.get("/metrics")
@requires_scope("metrics:read")
def metrics():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Figures())
    folder = current_app.config["METRICS_MULTIPROC_DIR"]
    if folder:  # every process's histograms and counters, from their files
        MultiProcessCollector(registry, path=folder)
    else:
        registry.register(_ThisProcess())
    response = Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_app_request
def _started() -> None:
    g.request_started = time.perf_counter()


@bp.after_app_request
def _count(response):
    started = g.pop("request_started", None)
    # The route pattern, never the path: a prober cannot create label values at will.
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    method = request.method if request.method in _METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    if started is not None:
        HTTP_REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
    return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
