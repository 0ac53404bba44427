"""The settings through a real send: per-reader tracking and erasure, opens with
machine opens apart, and tracking turned off."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import time_machine
from sqlalchemy import select

from newsletter.analytics import reports
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Click, ClickKind, Digest, Verdict
from newsletter.readers import privacy
from tests.factories import add_article, add_subscribers, send_now
from tests.helpers import wait_until_sent
from workers.tasks import store_clicks

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def send(app, mailbox, readers: int = 3):
    ids = add_subscribers(app, readers)
    add_article(app)
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    by_reader = {}
    for message in mailbox.wait_for(readers):
        reader = ids[int(re.search(r"reader(\d+)@", message["To"]).group(1))]
        by_reader[reader] = message.get_body(("html",)).get_content()
    return digest_id, by_reader, datetime.now(UTC)


def first(pattern: str, html: str) -> str:
    return urlsplit(re.search(pattern, html).group(1)).path


def test_with_per_reader_tracking_a_click_names_its_reader_until_erased(
        app, client, celery_worker, mailbox):
    app.config.update(TRACK_READERS=True, TRACK_OPENS=True)
    digest_id, by_reader, sent_at = send(app, mailbox)
    reader, html = next(iter(by_reader.items()))
    with time_machine.travel(sent_at + timedelta(minutes=4), tick=True):
        assert client.get(first(r'href="(http://localhost/r/[^"]+)"', html),
                          headers={"User-Agent": BROWSER}).status_code == 302
        pixel = first(r'<img src="(http://localhost/o/[^"]+)"', html)
        for agent, address in ((BROWSER, "203.0.113.5"), ("Mozilla/5.0", "17.58.100.1"),
                               ("Mozilla/5.0 (via ggpht.com GoogleImageProxy)", "66.1.2.3")):
            opened = client.get(pixel, headers={"User-Agent": agent},
                                environ_base={"REMOTE_ADDR": address})
            assert opened.status_code == 200 and opened.mimetype == "image/gif"
    with app.app_context():
        assert store_clicks() == 4
        click = db.session.scalar(select(Click).where(Click.kind == ClickKind.CLICK))
        assert (click.subscriber_id, click.verdict) == (reader, Verdict.HUMAN)
        report = reports.issue_report(db.session.get(Digest, digest_id))
        assert report.opens == {"human": 1, "proxy": 2, "bot": 0}
        with unit_of_work():
            assert privacy.erase_subscriber(reader)
        assert db.session.scalar(select(Click.subscriber_id).where(
            Click.kind == ClickKind.CLICK)) is None


def test_without_reader_tracking_no_reader_id_is_stored_and_there_is_no_pixel(
        app, client, celery_worker, mailbox):
    digest_id, by_reader, sent_at = send(app, mailbox)
    html = next(iter(by_reader.values()))
    assert "/o/" not in html
    with time_machine.travel(sent_at + timedelta(minutes=4), tick=True):
        client.get(first(r'href="(http://localhost/r/[^"]+)"', html),
                   headers={"User-Agent": BROWSER})
    with app.app_context():
        assert store_clicks() == 1
        assert db.session.scalar(select(Click.subscriber_id)) is None
        assert reports.issue_report(db.session.get(Digest, digest_id)).opens is None


def test_with_click_tracking_off_the_digest_links_straight_to_the_article(
        app, client, celery_worker, mailbox):
    app.config["TRACK_CLICKS"] = False
    _, by_reader, _ = send(app, mailbox, readers=1)
    html = next(iter(by_reader.values()))
    assert "/r/" not in html and 'href="https://news.example.com/geneva"' in html
