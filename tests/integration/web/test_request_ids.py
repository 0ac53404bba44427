"""Every answer names its request id; a proxy's id is kept only when it looks like one."""

from __future__ import annotations

import re


def test_each_request_gets_an_id_of_its_own(client):
    first = client.get("/healthz/live").headers["X-Request-ID"]
    second = client.get("/no-such-page").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


def test_a_proxy_id_is_kept_and_junk_replaced(client):
    kept = client.get("/healthz/live", headers={"X-Request-ID": "lb-7f3a.42"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.42"
    for junk in ['a"} {"level": "CRITICAL', "x" * 65, "ü", ""]:
        answer = client.get("/healthz/live", headers={"X-Request-ID": junk})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])
