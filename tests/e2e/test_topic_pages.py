"""The editors' topic page and the public topic archive in a browser, under the CSP."""

from __future__ import annotations

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.issues import digests
from tests.factories import add_article, add_subscribers, make_editor
from tests.helpers import log_in, screenshot, wait_until_sent


def test_topics_from_categories_then_their_archive_and_feed(app, live_server, page, mailbox):
    make_editor(app)
    add_subscribers(app, 1)
    add_article(app)  # filed under "Europe"
    log_in(page, live_server, "/admin/topics/")
    page.get_by_text("Categories no topic covers yet: Europe.").wait_for()
    page.get_by_role("button", name="Make a topic of each").click()
    page.get_by_text("1 topic(s) made from categories.").wait_for()
    page.get_by_label("Name", exact=True).fill("Diplomacy")
    page.get_by_label("Article categories, one a line").fill("Europe\nTreaties")
    page.get_by_role("button", name="Create the topic").click()
    page.get_by_text("Topic 'Diplomacy' created.").wait_for()
    page.get_by_role("button", name="Move Diplomacy up").click()
    screenshot(page, "admin-topics")
    with app.app_context():
        assert [topic.slug for topic in topics.list_topics()] == ["diplomacy", "europe"]
        with unit_of_work():
            digest_id = digests.send_now().id
        wait_until_sent(app, digest_id)

    page.goto(f"{live_server}/archive/topics/")
    page.get_by_role("link", name="Diplomacy", exact=True).click()
    page.get_by_role("heading", name="Diplomacy").wait_for()
    page.get_by_role("link", name="Talks resume in Geneva", exact=True).wait_for()
    screenshot(page, "archive-topic")
    feed = page.request.get(f"{live_server}/archive/topics/diplomacy/feed.atom")
    assert feed.ok and b"Talks resume in Geneva" in feed.body()
