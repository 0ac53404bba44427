import pytest

from newsletter.content.articles import (
    ArticleInput,
    InvalidArticle,
    render_markdown,
    summary_from_body,
    validate,
)
from newsletter.content.excerpts import EXCERPT_LENGTH, HARD_LIMIT, digest_body, excerpt

ARTICLE = render_markdown("""Intro.

## What was decided

1. more buses
2. fewer cars
    - at night

See [the minutes](https://city.example/minutes) or <https://city.example/>.

> Quoted words.

![Chamber](https://img.example/c.jpg)
""")


def test_structure_survives_in_html_and_text():
    body = excerpt(ARTICLE)
    assert "<h2>What was decided</h2>" in body.html
    assert "<ol> <li>more buses</li>" in body.html
    assert '<a href="https://city.example/minutes">the minutes</a>' in body.html
    assert "<blockquote> <p>Quoted words.</p> </blockquote>" in body.html
    assert body.text == (
        "Intro.\n\nWhat was decided\n\n1. more buses\n2. fewer cars\n  - at night\n\n"
        "See the minutes (https://city.example/minutes) or https://city.example/.\n\n"
        "> Quoted words.\n\n[Image: Chamber]")


def test_images_are_https_width_limited_and_never_pixels():
    body = excerpt('<img src="https://img.example/wide.jpg" alt="Wide" width="2000" height="900">'
                   '<img src="http://img.example/plain.jpg" alt="Plain">'
                   '<img src="https://t.example/p.gif" width="1" height="1">'
                   '<img src="data:image/png;base64,AAAA" alt="Inline">')
    assert body.html == ('<img src="https://img.example/wide.jpg" alt="Wide" width="600" '
                         'style="display:block;max-width:100%;height:auto;border:0">')
    assert body.text == "[Image: Wide]"


def test_hostile_markup_is_sanitised():
    body = excerpt('<p onclick="x()">Hi<script>alert(1)</script> <a href="javascript:alert(1)">'
                   'link</a><iframe src="https://evil.example"></iframe><style>p{}</style></p>')
    assert body.html == "<p>Hi <a>link</a></p>"
    assert body.text == "Hi link"


def test_lists_nested_deeper_than_a_mail_shows_are_left_out():
    body = excerpt("<ul><li>" * 60 + "deep" + "</li></ul>" * 60 + "<p>After.</p>")
    assert body.html.count("<ul>") == 3 and "deep" not in body.html
    assert "After." in body.text and "deep" not in body.text


@pytest.mark.parametrize("tag", ["ul", "ol", "blockquote", "div"])
def test_ten_thousand_nested_blocks_are_refused_before_the_sanitiser(tag):
    hostile = f"<{tag}>" * 10_000 + "x"
    with pytest.raises(InvalidArticle, match="10000 deep"):
        validate(ArticleInput(title="T", url="https://a.example/1", body_html=hostile))
    with pytest.raises(InvalidArticle, match="deep; at most 100"):
        validate(ArticleInput(title="T", url="https://a.example/1",
                              body_markdown=">" * 10_000 + " x"))
    shallow = validate(ArticleInput(title="T", url="https://a.example/1",
                                    body_html=f"<{tag}>" * 100 + "x"))
    assert "x" in shallow.body_html
    # A body stored before such bodies were refused shows its summary.
    assert digest_body("Summary.", hostile).text == "Summary."


def test_a_long_body_ends_at_a_block_boundary():
    paragraphs = [f"Paragraph {n} " + "word " * 60 for n in range(20)]
    body = excerpt("".join(f"<p>{p}</p>" for p in paragraphs))
    assert body.html.endswith("</p>") and body.html.count("<p>") == body.html.count("</p>")
    assert EXCERPT_LENGTH <= len(body.text) < EXCERPT_LENGTH + 400
    one_block = excerpt("<p>" + "word " * 5_000 + "</p>")
    assert one_block.html.endswith("…</p>") and len(one_block.text) <= HARD_LIMIT + 1


def test_a_summary_the_writer_gave_wins():
    assert digest_body("Short version.", ARTICLE).html == "<p>Short version.</p>"
    derived = summary_from_body(ARTICLE)
    assert "<h2>" in digest_body(derived, ARTICLE).html
    assert digest_body("", "").html == ""
