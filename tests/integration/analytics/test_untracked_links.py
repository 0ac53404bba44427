"""Links that act on a reader are never tracked: in a digest the unsubscribe, preference
and archive links (body and headers) go straight to the site, and the mails a reader is
sent one by one (confirmation, welcome) carry no tracked link at all. Real worker, Redis
and SMTP server."""

from __future__ import annotations

import re

import pytest

from tests.factories import add_article, add_subscribers, send_now
from tests.helpers import (
    csrf_token_from,
    link_from,
    process_subscribe_requests,
    subscribe_by_form,
    wait_until_sent,
)

pytestmark = pytest.mark.usefixtures("clean_state")

TRACKED = "http://localhost/r/"


def every_link(message) -> list[str]:
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    return re.findall(r'href="([^"]+)"', html) + re.findall(r"https?://\S+", text)


@pytest.fixture(autouse=True)
def tracking_on(app):
    assert app.config["TRACK_CLICKS"]  # the default: these tests are about what it leaves


def test_a_digests_unsubscribe_preference_and_archive_links_go_straight_to_the_site(
        app, celery_worker, mailbox):
    add_subscribers(app, 1)
    add_article(app, url="https://news.example.com/geneva")
    wait_until_sent(app, send_now(app))
    [message] = mailbox.wait_for(1)
    links = every_link(message)
    assert any(link.startswith(TRACKED) for link in links)  # the article is tracked
    assert "https://news.example.com/geneva" not in links
    reader_links = [link for link in links if "/unsubscribe/" in link or "/archive" in link]
    assert any(link.endswith("/preferences") for link in reader_links)
    assert len(reader_links) >= 4  # unsubscribe and preferences in both parts, the archive
    assert not [link for link in reader_links if link.startswith(TRACKED)]
    for header in ("List-Unsubscribe", "List-Archive"):
        assert message[header].startswith("<http://localhost/") and TRACKED not in message[
            header]


def test_confirmation_and_welcome_mails_carry_no_tracked_link(app, client, celery_worker,
                                                              mailbox):
    assert subscribe_by_form(client, "ada@example.com", "Ada").status_code in (200, 302, 303)
    process_subscribe_requests(app)
    [confirmation] = mailbox.wait_for(1)
    confirm = link_from(confirmation, "/confirm/")
    assert not [link for link in every_link(confirmation) if link.startswith(TRACKED)]

    path = confirm.removeprefix("http://localhost")
    confirmed = client.post(path, data={"csrf_token": csrf_token_from(client, path)})
    assert confirmed.status_code < 400
    welcome = mailbox.wait_for(2)[1]
    assert welcome["Subject"].startswith("Welcome")
    links = every_link(welcome)
    assert any("/preferences" in link for link in links)
    assert not [link for link in links if link.startswith(TRACKED)]
