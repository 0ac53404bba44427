"""The ways in: feeds, the API, CSV lists, the CLI; and the sending-rate cap."""

from __future__ import annotations

import io
import threading
import time
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from newsletter.delivery.relay import SendRate
from newsletter.extensions import db
from newsletter.models import (
    Article,
    ConsentEvent,
    Digest,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from tests.factories import add_article, add_subscribers, api_token
from tests.helpers import poll_feed, process_subscribe_requests
from tests.integration.feed_server import ALLOWED_HOST, ALLOWED_NETWORKS

FEED = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>World desk</title>
<item><title>Ceasefire talks resume</title><link>https://news.example.com/ceasefire</link>
<guid>news-1</guid><pubDate>{date}</pubDate><category>Middle East</category>
<description><![CDATA[<p onclick="x()">Talks <script>alert(1)</script>resume.</p>]]>
</description></item>
<item><title></title><link>https://news.example.com/untitled</link></item>
<item><title>Trade deal signed</title><link>https://news.example.com/trade</link>
<guid>news-2</guid></item>
</channel></rss>"""


class FeedServer(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        FeedServer.requests.append(dict(self.headers))
        if self.path == "/broken":
            body, status = b"<html>not a feed", 200
        elif self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.end_headers()
            return
        else:
            body, status = FEED.format(date=format_datetime(utcnow())).encode(), 200
        self.send_response(status)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def feed_url(app):
    # Feeds are fetched from public https addresses only; this loopback one is exempt.
    saved = {key: app.config[key] for key in ("FEED_ALLOW_HTTP", "FEED_ALLOWED_NETWORKS")}
    app.config.update(FEED_ALLOW_HTTP=True, FEED_ALLOWED_NETWORKS=ALLOWED_NETWORKS)
    server = ThreadingHTTPServer((ALLOWED_HOST, 0), FeedServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FeedServer.requests = []
    yield f"http://{ALLOWED_HOST}:{server.server_port}"
    server.shutdown()
    app.config.update(saved)


def test_feed_polling_is_conditional_and_sanitises(app, client, feed_url):
    with app.app_context():
        first = poll_feed(feed_url + "/feed")
        assert (first.added, first.skipped, first.error) == (2, 1, None)  # untitled skipped
        second = poll_feed(feed_url + "/feed")
        assert second.not_modified and second.added == 0
        assert FeedServer.requests[1]["If-None-Match"] == '"v1"'
        ceasefire = db.session.scalar(select(Article).filter_by(guid="news-1"))
        assert ceasefire.categories == ["Middle East"]
        assert "script" not in ceasefire.summary and ceasefire.summary == "Talks resume."
        broken = poll_feed(feed_url + "/broken")
        unreachable = poll_feed(f"http://{ALLOWED_HOST}:9/feed")
        assert broken.error.startswith("not a feed") and unreachable.error
        assert db.session.scalar(select(func.count()).select_from(Article)) == 2


def test_articles_api_needs_a_token_and_deduplicates(app, client):
    payload = {"title": "Summit\r\nBcc: x@example.com", "url": "https://news.example.com/summit",
               "categories": ["Europe"], "published_at": "2026-11-27T10:00:00Z",
               "body_html": '<p>Text<img src=x onerror="steal()"></p>'}
    assert client.post("/api/v1/articles", json=payload).status_code == 401
    assert client.post("/api/v1/articles", json=payload,
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    headers = {"Authorization": f"Bearer {api_token(app)}"}
    created = client.post("/api/v1/articles", json=payload, headers=headers)
    assert created.status_code == 201
    again = client.post("/api/v1/articles", json=payload, headers=headers)
    assert again.status_code == 200 and again.get_json()["created"] is False
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.title == "Summit Bcc: x@example.com"
        assert "onerror" not in article.body_html
    for bad, reason in [({"url": "https://a.example/x"}, "title"),
                        ({"title": "t", "url": "ftp://a.example/x"}, "URL"),
                        ({"title": "t", "url": "https://a.example/x", "published_at": "soon"},
                         "ISO date"),
                        ({"title": "t", "url": "https://a.example/x", "categories": "x"},
                         "list")]:
        response = client.post("/api/v1/articles", json=bad, headers=headers)
        assert response.status_code == 400 and reason in response.get_json()["error"]


def test_issues_api_sends_once(app, client, celery_worker, mailbox):
    headers = {"Authorization": f"Bearer {api_token(app)}"}
    add_subscribers(app, 2)
    add_article(app)
    first = client.post("/api/v1/issues", json={"subject": "Week in review"}, headers=headers)
    assert first.status_code == 201 and first.get_json()["recipients"] == 2
    second = client.post("/api/v1/issues", headers=headers)
    assert second.status_code == 200 and second.get_json()["status"] == "nothing-new"
    assert {m["Subject"] for m in mailbox.wait_for(2)} == {"Week in review"}
    assert client.post("/api/v1/issues", json={"subject": 5},
                       headers=headers).status_code == 400


def test_csv_import_with_consent_and_export(app, client):
    csv_file = ("email,name\nada@example.com,Ada\nADA@example.com,Dup\nnot-an-address,X\n"
                "grace@example.com,\n")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["subscribers", "import", "-", "--here", "--consent",
                                 "moved from OldTool, double opt-in there"],
                           input=csv_file)
    assert result.exit_code == 0, result.output
    assert "added 2, duplicates 1, invalid 1" in result.output
    assert "line 4" in result.output
    with app.app_context():
        statuses = set(db.session.scalars(select(Subscriber.status)))
        assert statuses == {SubscriberStatus.ACTIVE}
        detail = db.session.scalars(select(ConsentEvent.detail)).first()
        assert "moved from OldTool" in detail
    exported = runner.invoke(args=["subscribers", "export"])
    assert exported.output.splitlines()[0] == "email,name,status,created_at,confirmed_at,topics"
    assert "ada@example.com,Ada,active" in exported.output


def test_csv_import_without_consent_sends_confirmations(app, client):
    result = app.test_cli_runner().invoke(args=["subscribers", "import", "-", "--here"],
                                          input="email\nnew@example.com\n")
    assert "added 1" in result.output
    process_subscribe_requests(app)
    with app.app_context():
        assert db.session.scalar(select(Subscriber.status)) == SubscriberStatus.PENDING
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 1


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"name,phone\nAda,123\n", "'email'"),
])
def test_csv_import_refuses_bad_files(app, client, data, message):
    result = app.test_cli_runner().invoke(args=["subscribers", "import", "-"],
                                          input=io.BytesIO(data))
    assert result.exit_code != 0 and message in result.output


def test_cli_dry_run_preview_and_send(app, client, celery_worker, mailbox, tmp_path):
    add_subscribers(app, 3)
    add_article(app)
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["digest", "send", "--dry-run"])
    assert "1 new article(s), 3 recipient(s)" in dry.output
    preview = runner.invoke(args=["digest", "preview", "--out", str(tmp_path)])
    assert preview.exit_code == 0, preview.output
    assert "Talks resume in Geneva" in (tmp_path / "digest.html").read_text()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0
    sent = runner.invoke(args=["digest", "send"])
    assert sent.exit_code == 0, sent.output
    assert "sent 3, failed 0" in sent.output
    assert len(mailbox.wait_for(3)) == 3
    assert "Nothing new" in runner.invoke(args=["digest", "send"]).output


def test_import_of_bad_files_is_reported(app, client, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "notes.doc").write_text("x")
    result = app.test_cli_runner().invoke(
        args=["articles", "import", str(tmp_path / "empty.txt"), str(tmp_path / "notes.doc")])
    assert result.exit_code == 1
    assert "empty.txt: skipped: the file is empty" in result.output
    assert "notes.doc: skipped" in result.output


def test_send_rate_is_shared_through_redis(app):
    with app.app_context():
        limiter = SendRate(3.0)
        for key in limiter.redis.scan_iter("newsletter:send-rate:*"):
            limiter.redis.delete(key)
        seconds = []
        for _ in range(4):
            limiter.wait()
            seconds.append(int(time.time()))
    assert seconds[3] > seconds[0]  # the fourth message waited for the next second
