"""An editor writes an article in Markdown, watches the preview, saves it and finds it
on its page and in the next digest; a script typed into the Markdown goes nowhere."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Article
from tests.factories import make_editor
from tests.helpers import log_in, screenshot

MARKDOWN = """## The count goes on

Officials expect the **final result** by Friday.

- polls closed at 8
- turnout was *high*

<script>document.title = "hacked"</script>
<img src="x" onerror="document.title = 'hacked'">
"""


def test_a_markdown_article_with_preview(app, live_server, page):
    make_editor(app)
    log_in(page, live_server, "/admin/articles/new")
    page.get_by_label("Title").fill("Chile counts its votes")
    page.get_by_label("URL").fill(f"{live_server}/articles/chile-count")
    assert page.get_by_label("Markdown").is_checked()  # new articles start in Markdown
    page.get_by_label("Text").fill(MARKDOWN)

    preview = page.frame_locator("#preview")
    preview.get_by_role("heading", name="The count goes on").wait_for()
    assert preview.locator("strong").inner_text() == "final result"
    assert preview.locator("li").all_inner_texts() == ["polls closed at 8", "turnout was high"]
    assert preview.locator("script, [onerror]").count() == 0
    screenshot(page, "admin-article-markdown")

    page.get_by_role("button", name="Save").click()
    page.get_by_text("Article saved.").wait_for()
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.body_markdown == MARKDOWN
        article_id = article.id

    # The edit form shows the Markdown as typed, not the HTML made from it.
    page.goto(f"{live_server}/admin/articles/{article_id}/edit")
    assert "**final result**" in page.get_by_label("Text").input_value()

    page.goto(f"{live_server}/articles/chile-count")
    body = page.locator("article")
    body.get_by_role("heading", name="The count goes on").wait_for()
    assert body.locator("strong").inner_text() == "final result"
    assert body.locator("script, [onerror]").count() == 0

    page.goto(f"{live_server}/admin/digests")
    digest = page.frame_locator("iframe.preview")
    digest.get_by_role("link", name="Chile counts its votes").first.wait_for()
    digest.get_by_text("Officials expect the final result by Friday.").wait_for()
    assert page.title() != "hacked"
