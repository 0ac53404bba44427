""""View in your browser" in a personal digest opens that reader's copy (their sections
only), needs no login and shows nothing about the reader; anything but a link we
issued is a 404. A real worker and SMTP server send the copies."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.mail.tokens import make_web_copy_token, seal_ids
from newsletter.models import ArticleSource, DigestVariant, Subscriber, SubscriberStatus
from tests.factories import send_now
from tests.helpers import wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")


def send_two_copies(app, mailbox) -> dict[str, str]:
    """A reader of Asia and a reader of Europe get an issue with an article of each:
    the path of each one's "view in your browser" link."""
    with app.app_context(), unit_of_work():
        for slug, category in (("asia", "Asia"), ("europe", "Europe")):
            topics.create_topic(slug, category, categories=[category])
            articles.add_article(ArticleInput(
                title=f"News from {category}", url=f"https://news.example.com/{slug}",
                summary=f"What happened in {category}.", categories=[category],
                published_at=datetime.now(UTC)), ArticleSource.API)
        for slug in ("asia", "europe"):
            reader = Subscriber(email=f"{slug}-reader@example.com",
                                email_normalized=f"{slug}-reader@example.com",
                                name=f"Reader of {slug}", status=SubscriberStatus.ACTIVE)
            db.session.add(reader)
            db.session.flush()
            topics.set_reader_topics(reader, topics.topics_by_slugs([slug]))
    wait_until_sent(app, send_now(app))
    links = {}
    for message in mailbox.wait_for(2):
        reader = message["To"].addresses[0].username.removesuffix("-reader")
        text = message.get_body(("plain",)).get_content()
        [link] = re.findall(r"View in your browser: http://localhost(/copy/\S+)", text)
        html = message.get_body(("html",)).get_content()
        assert re.search(f'href="http://localhost{link}"[^>]*>View in your browser</a>', html)
        links[reader] = link
    return links


def test_each_reader_opens_their_own_copy_and_nothing_else(app, mailbox):
    links = send_two_copies(app, mailbox)
    assert links["asia"] != links["europe"]
    client = app.test_client()  # no login, no cookie
    for mine, other in (("asia", "Europe"), ("europe", "Asia")):
        page = client.get(links[mine])
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        assert f"News from {mine.title()}" in body
        assert f"News from {other}" not in body  # not a section they did not choose
        # Nothing about the reader: no address, name, unsubscribe or preference link.
        assert "@example.com" not in body and "Reader of" not in body
        assert "/unsubscribe/" not in body and "/preferences" not in body
        assert "Subscribe to" in body
        assert "sandbox" in page.headers["Content-Security-Policy"]
        assert page.headers["Referrer-Policy"] == "same-origin"  # the link stays ours
        assert page.headers["X-Robots-Tag"] == "noindex"


def test_a_forged_or_altered_link_is_a_404(app, mailbox):
    links = send_two_copies(app, mailbox)
    client = app.test_client()
    token = links["asia"].removeprefix("/copy/")
    with app.app_context():
        variants = {variant.id: variant.digest_id for variant in db.session.scalars(
            db.select(DigestVariant))}
        key = app.config["SECRET_KEY"].encode()
        [(variant_id, digest_id)] = list(variants.items())[:1]
        forged = [
            token[:-1] + ("a" if token[-1] != "a" else "b"),  # one character changed
            token[1:] + token[0],
            "a" * 26, "A" * 26, token + "a", token[:-1], "", "../archive/",
            make_web_copy_token(digest_id + 1, variant_id),  # a copy of another issue
            make_web_copy_token(digest_id, max(variants) + 1),  # no such copy
            seal_ids(key, "subscriber", digest_id, variant_id),  # another purpose's seal
            seal_ids(b"another key of at least thirty-two bytes", "web-copy",
                     digest_id, variant_id),
        ]
    for bad in forged:
        response = client.get(f"/copy/{bad}")
        assert response.status_code == 404, bad
        assert "News from" not in response.get_data(as_text=True)
    assert client.get(links["asia"]).status_code == 200


def test_a_link_survives_a_key_rotation(app, mailbox, monkeypatch):
    links = send_two_copies(app, mailbox)
    old_key = app.config["SECRET_KEY"]
    monkeypatch.setitem(app.config, "SECRET_KEY", "a new secret key of at least 32 bytes!")
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [old_key])
    assert app.test_client().get(links["europe"]).status_code == 200
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
    assert app.test_client().get(links["europe"]).status_code == 404
