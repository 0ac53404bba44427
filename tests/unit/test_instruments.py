"""The sample dashboard and alert rules in docs/ name only series that /metrics
exposes (the table in operations.md, which the integration tests hold to the code)."""

from __future__ import annotations

import json
import re

import yaml

from newsletter import instruments
from tests.helpers import ROOT

DOCS = ROOT / "docs"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def documented_series() -> set[str]:
    table = (DOCS / "operations.md").read_text().split("### Metrics", 1)[1].split("\n## ")[0]
    return set(re.findall(r"`(newsletter_[a-z_]+)[{`]", table))


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_worker_and_http_instruments_are_documented():
    documented = {base(name) for name in documented_series()}
    for metric in (instruments.SMTP_SEND_SECONDS, instruments.BATCH_SECONDS,
                   instruments.HTTP_REQUESTS, instruments.HTTP_REQUEST_SECONDS):
        assert metric._name in documented


def test_dashboard_and_alerts_name_documented_series():
    documented = {base(name) for name in documented_series()}
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel["targets"]]
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {base(name) for expr in expressions
             for name in re.findall(r"\bnewsletter_[a-z_]+", expr)}
    assert named and named <= documented, named - documented
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"NewsletterSendPausedByGuard", "NewsletterQueueGrowing", "NewsletterRelayOpen",
            "NewsletterNotReady"} <= alerts
