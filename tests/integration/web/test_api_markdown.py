"""`POST /api/v1/articles` with `body_markdown`: rendered and sanitised as the editor's
Markdown is; hostile Markdown is cleaned or refused with a clear 400, never a 500."""

from __future__ import annotations

import pytest

from newsletter.content import articles
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Article
from tests.factories import api_token

pytestmark = pytest.mark.usefixtures("clean_state")

MARKDOWN = """Opening paragraph.

## A heading

- one
- two

[a link](https://example.org/x) and **bold**.

![A harbour](https://img.example/harbour.jpg)
"""


@pytest.fixture
def post(app):
    token = api_token(app)
    client = app.test_client()
    counter = iter(range(10**6))

    def post(**fields):
        body = {"title": "A title", "url": f"https://news.example.com/{next(counter)}",
                "categories": ["Local"], **fields}
        return client.post("/api/v1/articles", json=body,
                           headers={"Authorization": f"Bearer {token}"})
    return post


def stored(app, article_id: int) -> Article:
    with app.app_context():
        article = db.session.get(Article, article_id)
        db.session.expunge(article)
        return article


def test_markdown_is_rendered_like_the_editors(app, post):
    response = post(body_markdown=MARKDOWN)
    assert response.status_code == 201
    article = stored(app, response.json["id"])
    assert article.body_markdown == MARKDOWN
    with app.app_context():
        assert article.body_html == articles.render_markdown(MARKDOWN)  # the editor's renderer
    for markup in ("<h2>A heading</h2>", "<li>one</li>", '<a href="https://example.org/x"',
                   "<strong>bold</strong>", 'alt="A harbour"'):
        assert markup in article.body_html


@pytest.mark.parametrize("markdown, unwanted", [
    ("Hi <script>alert(1)</script> there", "<script"),
    ("<iframe src='https://evil.example'></iframe>text", "<iframe"),
    ('<p onclick="alert(1)">text</p>', "onclick"),
    ("[click](javascript:alert(1))", "javascript:"),
    ("[click](JaVaScRiPt:alert(1))", "alert(1)"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "data:"),
    ("<style>body{display:none}</style>text", "<style"),
])
def test_raw_html_and_script_links_are_removed(app, post, markdown, unwanted):
    response = post(body_markdown=markdown)
    assert response.status_code == 201
    assert unwanted not in stored(app, response.json["id"]).body_html.lower()


def test_a_tracking_pixel_never_reaches_a_digest(app, post):
    pixel = ('Words.\n\n<img src="https://t.example/open.gif" width="1" height="1">\n\n'
             "![](http://tracker.example/pixel.gif)")
    assert post(body_markdown=pixel).status_code == 201
    with app.app_context():
        preview = digests.preview()
    assert "Words." in preview.html
    assert "t.example" not in preview.html and "tracker.example" not in preview.html


@pytest.mark.parametrize("markdown", [
    "- " * 10_000 + "deep",
    "1. " * 10_000 + "deep",
    "> " * 10_000 + "deep",
    "".join("    " * level + "- item\n" for level in range(150)),
    "<ul><li>" * 10_000 + "deep",
])
def test_ten_thousand_nested_lists_are_a_clear_400(app, post, markdown):
    response = post(body_markdown=markdown)
    assert response.status_code == 400
    assert "deep" in response.json["error"] and "at most 100" in response.json["error"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Article)) == 0


@pytest.mark.parametrize("markdown", [
    "[" * 8_000,  # each bracket sought its "]" to the end: minutes of CPU before
    "![" * 8_000,
    "[a" * 8_000,
    "[" * 8_000 + "]" * 8_000,
])
def test_brackets_that_close_far_away_or_never_are_a_clear_400(app, post, markdown):
    response = post(body_markdown=markdown)
    assert response.status_code == 400
    assert "too many [ brackets" in response.json["error"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Article)) == 0


@pytest.mark.parametrize("markdown", [
    "*a" * 100_000,  # each match rebuilt the rest of the paragraph: 27 s of CPU before
    "<b>" * 60_000,
    "`a` " * 50_000,
    "a  \n" * 50_000,
    "&amp; " * 33_000,
])
def test_a_long_paragraph_full_of_markup_is_a_clear_400(app, post, markdown):
    response = post(body_markdown=markdown)
    assert response.status_code == 400
    assert "split it with blank lines" in response.json["error"]


def test_the_same_markup_in_paragraphs_is_taken(app, post):
    paragraph = " ".join(["*a*"] * 300 + ["<b>b</b>"] * 100 + ["`c`"] * 100)
    response = post(body_markdown="\n\n".join([paragraph] * 50))
    assert response.status_code == 201


def test_many_links_and_escaped_brackets_are_taken(app, post):
    links = " ".join(f"[link {n}](https://example.org/{n})" for n in range(1_000))
    response = post(body_markdown=links + "\n\n" + "\\[" * 5_000)
    assert response.status_code == 201
    with app.app_context():
        body = db.session.get(Article, response.json["id"]).body_html
        assert body.count("<a ") == 1_000 and body.count("[") == 5_000


@pytest.mark.parametrize("fields, message", [
    ({"body_markdown": ["a"]}, '"body_markdown" must be a string'),
    ({"body_markdown": 7}, '"body_markdown" must be a string'),
    ({"body_markdown": "# x", "body_html": "<p>x</p>"}, "not both"),
    ({"body_markdown": "x" * (201 * 1024)}, "at most 200 KB"),
])
def test_bad_markdown_fields_are_a_400(app, post, fields, message):
    response = post(**fields)
    assert response.status_code == 400
    assert message in response.json["error"]
