"""An article written in Markdown keeps its structure in the digest a reader receives:
a real worker, a real SMTP server, both parts of the mail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.content import articles
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.models import ArticleSource
from tests.factories import add_subscribers, send_now
from tests.helpers import wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

BODY = """The council met on Monday.

## What was decided

- more buses
- fewer cars

Read [the minutes](https://city.example/minutes).

![The council chamber](https://img.example/chamber.jpg)

![](http://tracker.example/pixel.gif)
"""


def test_a_markdown_article_arrives_with_heading_list_link_and_image(app, mailbox):
    add_subscribers(app, 1)
    with app.app_context(), unit_of_work():
        articles.add_article(ArticleInput(
            title="Council votes", url="https://news.example.com/council",
            body_markdown=BODY, categories=["Local"], published_at=datetime.now(UTC)),
            ArticleSource.API)
    wait_until_sent(app, send_now(app))
    [message] = mailbox.messages
    html = message.get_body(("html",)).get_content()
    for markup in ("<h2", ">What was decided</h2>", "<ul", ">more buses</li>",
                   ">fewer cars</li>", 'href="https://city.example/minutes"',
                   'src="https://img.example/chamber.jpg"', 'alt="The council chamber"'):
        assert markup in html
    assert "tracker.example" not in html
    text = message.get_body(("plain",)).get_content()
    lines = text.splitlines()
    assert "What was decided" in lines
    assert "- more buses" in lines and "- fewer cars" in lines
    assert "Read the minutes (https://city.example/minutes)." in lines
    assert "[Image: The council chamber]" in lines


HOSTILE = ('<p>Fine words.<script>alert(1)</script><a href="javascript:alert(1)">click</a></p>'
           '<img src="https://t.example/open.gif" width="1" height="1">'
           + "<ul><li>" * 60 + "deep" + "</li></ul>" * 60 + "<p>After the lists.</p>")


def test_hostile_bodies_still_make_a_clean_mail(app, mailbox):
    add_subscribers(app, 1)
    with app.app_context(), unit_of_work():
        articles.add_article(ArticleInput(
            title="Hostile", url="https://feed.example/hostile", body_html=HOSTILE,
            categories=["Local"], published_at=datetime.now(UTC)), ArticleSource.FEED)
    wait_until_sent(app, send_now(app))
    [message] = mailbox.messages
    html = message.get_body(("html",)).get_content()
    assert "Fine words." in html and "After the lists." in html
    for unwanted in ("<script", "alert(1)", "javascript:", "t.example", "deep"):
        assert unwanted not in html
    assert html.count("<ul") <= 6
    text = message.get_body(("plain",)).get_content()
    assert "Fine words.click" in text and "After the lists." in text and "deep" not in text
