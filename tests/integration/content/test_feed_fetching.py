"""Feed fetching against real HTTP(S) servers: https only, no internal addresses
(also after a redirect), one deadline, a size cap."""

from __future__ import annotations

import dataclasses
import ssl
import time

import pytest
from sqlalchemy import func, select

from newsletter.config import FEED_DEADLINE_MAX
from newsletter.content.feeds import FetchError, FetchPolicy, fetch
from newsletter.extensions import db
from newsletter.models import Article, FeedState
from tests.helpers import poll_feed
from tests.integration.feed_server import (
    ALLOWED_HOST,
    ALLOWED_NETWORKS,
    INTERNAL_HOST,
    rss,
    self_signed_certificate,
    serve,
)

TEST_POLICY = FetchPolicy(allow_http=True, allowed_networks=ALLOWED_NETWORKS, deadline=10)
FEED = rss(("Ceasefire talks resume", "https://news.example.com/ceasefire"))


def feed_route(handler):
    handler.reply(FEED, ETag='"v1"', Content_Type="application/rss+xml")


@pytest.fixture
def internal():
    """A server on 127.0.0.1: stands for the metadata service or an admin port."""
    with serve(INTERNAL_HOST, feed_route) as server:
        yield server


def test_plain_http_is_refused_unless_allowed():
    with serve(ALLOWED_HOST, feed_route) as server:
        with pytest.raises(FetchError, match="only https"):
            fetch(server.url + "/feed", dataclasses.replace(TEST_POLICY, allow_http=False))
        assert server.requests == []
        assert fetch(server.url + "/feed", TEST_POLICY).body == FEED


def test_internal_addresses_are_refused_without_a_request(internal):
    port = internal.server_port
    for url in [f"http://127.0.0.1:{port}/feed", f"http://localhost:{port}/feed",
                f"http://2130706433:{port}/feed", f"http://0x7f.0.0.1:{port}/feed",
                f"http://[::ffff:127.0.0.1]:{port}/feed", f"http://[::1]:{port}/feed",
                f"http://0.0.0.0:{port}/feed"]:
        with pytest.raises(FetchError, match="not a public address"):
            fetch(url, TEST_POLICY)
    assert internal.requests == []


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:{port}/feed", "http://localhost:{port}/feed",
    "http://[::ffff:7f00:1]:{port}/feed", "http://2130706433:{port}/feed",
])
def test_a_redirect_to_an_internal_address_is_refused(internal, location):
    target = location.format(port=internal.server_port)
    with serve(ALLOWED_HOST, lambda handler: handler.redirect(target, 307)) as allowed:
        with pytest.raises(FetchError, match="not a public address"):
            fetch(allowed.url + "/feed", TEST_POLICY)
        assert len(allowed.requests) == 1
    assert internal.requests == []  # the internal server never saw a request


def test_redirects_are_followed_and_checked_up_to_five():
    def route(handler):
        hops = int(handler.path.rsplit("/", 1)[1])
        if hops:
            handler.redirect(f"/hop/{hops - 1}", 301)  # relative, resolved by us
        else:
            feed_route(handler)

    with serve(ALLOWED_HOST, route) as server:
        fetched = fetch(server.url + "/hop/5", TEST_POLICY)
        assert fetched.body == FEED and fetched.url == server.url + "/hop/0"
        assert fetched.etag == '"v1"'
        with pytest.raises(FetchError, match="more than 5 redirects"):
            fetch(server.url + "/hop/6", TEST_POLICY)


def test_a_slow_drip_is_cut_off_at_the_deadline():
    # 240 bytes at one per 0.5 s would hold the fetch for two minutes.
    with serve(ALLOWED_HOST, lambda handler: handler.drip(0.5, 240)) as server:
        started = time.monotonic()
        with pytest.raises(FetchError, match="no complete answer within 1.5 s"):
            fetch(server.url + "/feed", dataclasses.replace(TEST_POLICY, deadline=1.5))
        elapsed = time.monotonic() - started
        assert server.client_gone.wait(10)  # the server saw us hang up
    assert elapsed < 30, elapsed  # far below the two minutes the drip would take


def test_slow_headers_are_cut_off_at_the_deadline_too():
    def route(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(240):
            handler.wfile.write(b"X-Slow: a\r\n")
            handler.wfile.flush()
            time.sleep(0.5)  # the server drips its headers: what the test is about

    with serve(ALLOWED_HOST, route) as server:
        started = time.monotonic()
        with pytest.raises(FetchError, match="no complete answer"):
            fetch(server.url + "/feed", dataclasses.replace(TEST_POLICY, deadline=1.5))
        assert time.monotonic() - started < 30


def test_an_oversized_feed_is_refused():
    small = dataclasses.replace(TEST_POLICY, max_bytes=64 * 1024)

    def undeclared(handler):  # no Content-Length: the body ends when the connection does
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(64):
            handler.wfile.write(b"x" * 16 * 1024)

    with serve(ALLOWED_HOST, undeclared) as server, \
            pytest.raises(FetchError, match="larger than 65536 bytes"):
        fetch(server.url + "/feed", small)
    with serve(ALLOWED_HOST, lambda handler: handler.reply(b"x" * 70_000)) as server:
        with pytest.raises(FetchError, match="larger than 65536 bytes"):
            fetch(server.url + "/feed", small)
        assert fetch(server.url + "/feed", TEST_POLICY).body == b"x" * 70_000


def test_https_connects_to_the_checked_address_and_verifies_the_certificate(tmp_path):
    cert, key = self_signed_certificate(tmp_path, ALLOWED_HOST)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with serve(ALLOWED_HOST, feed_route) as plain:
        def route(handler):
            if handler.path == "/to-http":  # a downgrade
                handler.redirect(plain.url + "/feed")
            else:
                feed_route(handler)

        with serve(ALLOWED_HOST, route, tls=server_tls) as server:
            https_only = dataclasses.replace(TEST_POLICY, allow_http=False)
            with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
                fetch(server.url + "/feed", https_only)  # the system CAs do not know it
            trusting = dataclasses.replace(https_only,
                                           tls_context=ssl.create_default_context(cafile=cert))
            assert fetch(server.url + "/feed", trusting).body == FEED
            with pytest.raises(FetchError, match="only https"):
                fetch(server.url + "/to-http", trusting)
        assert plain.requests == []


@pytest.fixture
def feed_settings(app):
    saved = {key: app.config[key] for key in ("FEED_ALLOW_HTTP", "FEED_ALLOWED_NETWORKS")}
    app.config.update(FEED_ALLOW_HTTP=True, FEED_ALLOWED_NETWORKS=ALLOWED_NETWORKS)
    yield
    app.config.update(saved)


def test_poll_refuses_internal_feeds_by_default_and_records_why(app, client, internal):
    with app.app_context():
        result = poll_feed(internal.url + "/feed")
        assert "only https" in result.error
        result = poll_feed(internal.url.replace("http:", "https:") + "/feed")
        assert "not a public address" in result.error
        assert "only https" in db.session.get(FeedState, internal.url + "/feed").last_error
        assert db.session.scalar(select(func.count()).select_from(Article)) == 0
    assert internal.requests == []


def test_a_feed_body_naming_a_local_file_is_not_read(app, client, feed_settings, tmp_path):
    local = tmp_path / "local-feed.xml"
    local.write_bytes(rss(("Read from our own disk", "https://news.example.com/disk")))
    with serve(ALLOWED_HOST, lambda handler: handler.reply(str(local).encode())) as server, \
            app.app_context():
        result = poll_feed(server.url + "/feed")
        assert result.added == 0 and result.error.startswith("not a feed")
        assert db.session.scalar(select(func.count()).select_from(Article)) == 0


def test_feed_polls_run_on_the_maintenance_queue_with_a_time_limit(app):
    import workers.tasks

    celery = app.extensions["celery"]
    for name in ("workers.tasks.poll_feeds", "workers.tasks.poll_feed"):
        route = celery.amqp.router.route({}, name)
        assert route["queue"].name == app.config["TASK_QUEUE"] + ".maintenance"
    poll = workers.tasks.poll_feed
    assert FEED_DEADLINE_MAX < poll.soft_time_limit < poll.time_limit


def test_the_poller_applies_the_configured_deadline_and_cap(app, client, feed_settings):
    saved = {key: app.config[key] for key in ("FEED_FETCH_DEADLINE", "FEED_MAX_BYTES")}
    app.config.update(FEED_FETCH_DEADLINE=1.0, FEED_MAX_BYTES=1024)
    try:
        with serve(ALLOWED_HOST, lambda handler: handler.drip(0.5, 240)) as slow, \
                serve(ALLOWED_HOST, lambda handler: handler.reply(b" " * 2048)) as big, \
                app.app_context():
            assert "no complete answer within 1 s" in poll_feed(slow.url + "/f").error
            assert "larger than 1024 bytes" in poll_feed(big.url + "/f").error
    finally:
        app.config.update(saved)
