"""The editor pages in a browser: a reader's choices and pause on their page, paused
readers counted, "Add a reader" with topics, a compose preview that survives any typed
topic, https images in the article preview, one date and time input, maxlength as the
server's limits, an import that keeps a row with an unknown topic, the navigation at a
desktop and a phone width."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from newsletter.content import articles, topics
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Article, Subscriber
from tests.factories import add_article, add_subscribers, make_editor
from tests.helpers import log_in, screenshot


def make_topics(app) -> None:
    with app.app_context(), unit_of_work():
        topics.create_topic("europe", "Europe", description="The continent, weekly.",
                            categories=["Europe"])
        topics.create_topic("asia", "Asia")


def test_a_reader_added_with_topics_shows_choices_and_pause(app, live_server, page):
    make_editor(app)
    make_topics(app)
    log_in(page, live_server, "/admin/subscribers/new")
    page.get_by_label("Email address").fill("ines@example.com")
    page.get_by_label("Europe").check()
    page.get_by_label("Consent they gave").fill("Signed up on paper")
    page.get_by_role("button", name="Add the reader").click()
    page.get_by_text("Reader added as confirmed.").wait_for()
    choices = page.locator("#choices")
    assert choices.inner_text().split("\n") == [
        "Topics", "Europe", "Cadence", "weekly", "Pause", "Not paused"]
    with app.app_context(), unit_of_work():
        reader = db.session.scalar(select(Subscriber))
        topics.pause_reader(reader, datetime(2030, 1, 7, 9, tzinfo=UTC))
    page.reload()
    choices.get_by_text("Paused until 07 Jan 2030 09:00 UTC: no digest before then").wait_for()
    screenshot(page, "admin-subscriber-choices")
    page.get_by_role("link", name="Dashboard").click()
    assert page.locator("#paused").inner_text() == "1"

    # An unknown topic ticked by a forged form: refused, nobody added.
    page.goto(f"{live_server}/admin/subscribers/new")
    page.get_by_label("Email address").fill("forged@example.com")
    page.locator("input[name=topics][value=asia]").evaluate("box => box.value = 'nope'")
    page.locator("input[name=topics][value=nope]").check()
    page.get_by_role("button", name="Add the reader").click()
    page.get_by_text("Unknown topic: nope").wait_for()
    with app.app_context():
        assert db.session.scalar(select(Subscriber.email).where(
            Subscriber.email == "forged@example.com")) is None


def test_the_compose_preview_names_a_half_typed_topic(app, live_server, page):
    make_editor(app)
    make_topics(app)
    add_subscribers(app, 1)
    add_article(app)  # filed under Europe
    log_in(page, live_server, "/admin/digests")
    preview = page.frame_locator("iframe.preview")
    page.get_by_label("Preview and test as a reader of topics").fill("eur")
    preview.get_by_text("Previewed as the whole issue: unknown topic 'eur'").wait_for()
    preview.get_by_role("link", name="Talks resume in Geneva").first.wait_for()
    page.locator("#preview-text", has_text="unknown topic 'eur'").wait_for()
    screenshot(page, "compose-unknown-topic")
    page.get_by_label("Preview and test as a reader of topics").fill("europe")
    preview.get_by_text("unknown topic").wait_for(state="detached")  # the new preview
    preview.get_by_role("link", name="Talks resume in Geneva").first.wait_for()
    page.get_by_label("Preview and test as a reader of topics").fill("asia")  # nothing new
    preview.get_by_text("Nothing new for a reader of these topics").wait_for()


def test_the_article_preview_shows_https_images_and_only_it(app, live_server, page):
    make_editor(app)
    image = "https://images.example.com/council.png"
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    log_in(page, live_server, "/admin/articles/new")
    page.get_by_label("Text").fill(f"The council met.\n\n![The council]({image})")
    preview = page.frame_locator("#preview")
    preview.get_by_text("The council met.").wait_for()
    assert preview.get_by_role("img", name="The council").count() == 1
    assert image in asked  # the browser fetched it: the preview's policy allows https images
    policy = page.evaluate("""async () => (await fetch(location.href))
                              .headers.get('content-security-policy')""")
    assert "img-src 'self' data:;" in policy  # the page itself keeps the workspace's policy
    screenshot(page, "admin-article-preview-image")


def test_one_date_and_time_input_and_the_servers_limits(app, live_server, page):
    make_editor(app)
    add_subscribers(app, 1)
    log_in(page, live_server, "/admin/articles/new")
    for label, limit in (("Title", articles.MAX_TITLE), ("URL", articles.MAX_URL),
                         ("Summary", articles.MAX_SUMMARY)):
        assert page.get_by_label(label).get_attribute("maxlength") == str(limit)
    page.get_by_label("Title").fill("T" * (articles.MAX_TITLE + 20))
    assert len(page.get_by_label("Title").input_value()) == articles.MAX_TITLE
    article_inputs = inputs_of(page)
    page.get_by_label("Title").fill("Chile counts its votes")
    page.get_by_label("URL").fill("https://news.example.com/chile")
    page.get_by_label("Date").fill("2026-11-28")
    page.get_by_label("Time").fill("14:34")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Article saved.").wait_for()
    with app.app_context():
        assert db.session.scalar(select(Article.published_at)) == datetime(
            2026, 11, 28, 14, 34, tzinfo=UTC)
    page.goto(f"{live_server}/admin/digests")
    assert inputs_of(page) == article_inputs  # the compose form's are the same


def inputs_of(page) -> list[tuple]:
    """The date and time inputs as the editor meets them: type, placeholder, maxlength."""
    return [(field.get_attribute("type"), field.get_attribute("inputmode"),
             field.get_attribute("maxlength"))
            for field in (page.get_by_label("Date"), page.get_by_label("Time"))]


def test_the_import_page_names_every_column_and_keeps_a_row_with_a_bad_slug(
        app, live_server, page, tmp_path):
    make_editor(app)
    make_topics(app)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,name,topics\nada@example.com,Ada,europe;asia\n"
                        "bo@example.com,Bo,europe;eur\n")
    log_in(page, live_server, "/admin/subscribers/import")
    columns = page.locator("#columns")
    assert [cell.inner_text() for cell in columns.locator("code").all()][:3] == [
        "email", "name", "topics"]
    columns.get_by_text("Topics now: europe, asia.").wait_for()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_label("Consent they gave").fill("Moved from our old tool")
    page.get_by_role("button", name="Check the file").click()
    page.get_by_role("heading", name="Report").wait_for()
    assert page.locator("#valid").inner_text() == "2"
    assert page.locator("#invalid").inner_text() == "0"
    notes = page.locator("#topic-notes").inner_text()
    assert "bo@example.com" in notes and "unknown topic 'eur'" in notes
    screenshot(page, "admin-import-topic-notes")
    page.get_by_role("button", name="Import 2 subscribers as confirmed").click()
    page.get_by_role("heading", name="Imported 2 subscribers").wait_for()
    page.locator("#topic-notes", has_text="unknown topic 'eur'").wait_for()
    with app.app_context():
        bo = db.session.scalar(select(Subscriber).where(Subscriber.email == "bo@example.com"))
        assert [topic.slug for topic in bo.topics] == ["europe"]


def test_the_navigation_is_one_row_wide_and_a_menu_on_a_phone(app, live_server, page):
    make_editor(app)
    log_in(page, live_server, "/admin/")
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.set_viewport_size({"width": 1280, "height": 800})
    wide = page.get_by_role("navigation", name="Workspace", exact=True)
    items = wide.locator("a, button")
    middles = [box["y"] + box["height"] / 2 for box in (item.bounding_box()
                                                        for item in items.all())]
    assert items.count() == 15  # every link of an owner, and "Log out"
    assert max(middles) - min(middles) < 8, middles  # on one row
    assert not page.get_by_text("Menu", exact=True).is_visible()
    screenshot(page, "admin-nav-1280")

    page.set_viewport_size({"width": 375, "height": 800})
    assert not wide.is_visible()
    bar = page.locator("header.bar").bounding_box()
    assert bar["height"] < 70  # one compact row, not six
    page.get_by_text("Menu", exact=True).click()
    menu = page.get_by_role("navigation", name="Workspace menu")
    menu.get_by_role("link", name="Topics").wait_for()
    screenshot(page, "admin-nav-375-open")
    menu.get_by_role("link", name="Topics").click()
    page.get_by_role("heading", name="Topics").first.wait_for()
    assert page.url.endswith("/admin/topics/")
