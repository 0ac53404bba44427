
import pytest

from newsletter.content.article_files import (
    parse_html_page,
    parse_markdown,
    read_article_file,
)
from newsletter.content.articles import InvalidArticle, sanitize_html, validate
from tests.helpers import SAMPLE

# A copy of shared/samples/articles/, so a clone runs its tests on its own.


def test_scraped_sample_imports_without_site_boilerplate():
    article = read_article_file(SAMPLE, "https://news.example.com/articles")
    assert article.title == ("US Secretary of State meets Central Asian foreign ministers, "
                             "attends C5+1 meeting")
    assert article.categories == ["Asia-Pacific", "News", "US"]
    assert article.url == "https://news.example.com/articles/us-secretary-of-state-c5-plus-1"
    assert article.body_html.startswith("<p>U.S. Secretary of State Antony Blinken arrived")
    for boilerplate in ("Related Articles", "Leave a comment", "Copyright", "Subscribe to",
                        "Back to Top", "No Comments on"):
        assert boilerplate not in article.body_html


def test_markdown_with_front_matter():
    article = parse_markdown(
        "---\ntitle: Elections in Chile\nurl: https://news.example.com/chile\n"
        "date: 2026-11-20T09:00:00+01:00\nauthor: R. Reporter\ncategories: [Americas, News]\n"
        "---\nThe **vote** was close.\n", "https://unused.example/x")
    assert article.title == "Elections in Chile"
    assert article.url == "https://news.example.com/chile"
    assert article.categories == ["Americas", "News"]
    assert article.published_at.isoformat() == "2026-11-20T09:00:00+01:00"
    assert article.body_markdown == "The **vote** was close.\n"
    assert "<strong>vote</strong>" in validate(article).body_html
    with pytest.raises(InvalidArticle, match="front matter"):
        parse_markdown("no front matter", "https://x.example/a")


def test_html_page_reads_meta_and_article_body():
    article = parse_html_page(
        '<html><head><title>Fallback</title><meta property="og:title" content="Talks resume">'
        '<link rel="canonical" href="https://news.example.com/talks">'
        '<meta property="article:published_time" content="2026-11-21T10:00:00Z">'
        '<meta property="article:section" content="Europe"></head>'
        "<body><nav>menu</nav><article><p>Body text.</p></article></body></html>",
        "https://unused.example/x")
    assert (article.title, article.url, article.categories) == (
        "Talks resume", "https://news.example.com/talks", ["Europe"])
    assert article.body_html == "<p>Body text.</p>"


def test_hostile_html_is_sanitised():
    clean = sanitize_html('<p onclick="steal()">Hi<script>alert(1)</script>'
                          '<a href="javascript:alert(1)">x</a><a href="https://ok.example">ok</a>'
                          '<iframe src="https://evil.example"></iframe></p>')
    assert "script" not in clean and "onclick" not in clean and "javascript:" not in clean
    assert "iframe" not in clean and 'href="https://ok.example"' in clean


def test_titles_lose_line_breaks_and_bad_urls_are_refused():
    from newsletter.content.articles import ArticleInput

    data = validate(ArticleInput(title="Breaking\r\nBcc: x@example.com", url="https://a.example/1"))
    assert data.title == "Breaking Bcc: x@example.com"
    with pytest.raises(InvalidArticle, match="title"):
        validate(ArticleInput(title="  ", url="https://a.example/1"))
    with pytest.raises(InvalidArticle, match="URL"):
        validate(ArticleInput(title="t", url="javascript:alert(1)"))


def test_people_are_told_a_title_is_too_long_and_feeds_have_it_cut():
    from newsletter.content.articles import ArticleInput

    data = ArticleInput(title="T" * 501, url="https://a.example/1", summary="s" * 2001)
    with pytest.raises(InvalidArticle) as refused:
        validate(data)
    assert [p.split(";")[0] for p in refused.value.problems] == [
        "The title has 501 characters", "The summary has 2001 characters"]
    assert len(validate(data, cut_to_fit=True).title) == 500


def front_matter(meta: str, body: str = "Body.\n") -> str:
    return f"---\n{meta}\n---\n{body}"


@pytest.mark.parametrize("meta", [
    'categories: ["Europe", "News"]',
    "categories:\n  - Europe\n  - News",
    "categories: [Europe, News]",
    "categories: Europe, News",
    "tags:\n- Europe\n- News",
])
def test_categories_as_flow_list_block_list_string_or_tags(meta):
    article = parse_markdown(front_matter(f"title: T\n{meta}"), "https://x.example/a")
    assert article.categories == ["Europe", "News"]


def test_quoted_strings_colons_and_dates():
    article = parse_markdown(front_matter(
        "title: 'Talks: day two'\nsummary: \"It's \\\"late\\\"\"\nauthor: A. Writer\n"
        "date: 2026-11-28\nurl: https://news.example.com/talks"), "https://x.example/a")
    assert article.title == "Talks: day two"
    assert article.summary == 'It\'s "late"'
    assert article.url == "https://news.example.com/talks"
    assert article.published_at.isoformat() == "2026-11-28T00:00:00+00:00"
    quoted = parse_markdown(front_matter('title: T\ndate: "2026-11-28T10:30:00Z"'), "https://x/a")
    assert quoted.published_at.isoformat() == "2026-11-28T10:30:00+00:00"


def test_empty_front_matter_and_empty_body_parse():
    article = parse_markdown("---\n---\n", "https://x.example/a")
    assert (article.title, article.url, article.body_markdown) == ("", "https://x.example/a", "")


@pytest.mark.parametrize(("meta", "message"), [
    ("title: T\ncategories: [Europe", "front matter line 3"),
    ("title: T\n  bad: indent", "front matter line 3"),
    ("title: Talks: day two", r"line 2: mapping values .* \(put a value that holds ': ' in"),
    ("title: T\ndate: yesterday", "is not an ISO date"),
    ("- just\n- a list", "key: value"),
    ("title: [a, b]", "'title' must be a single value"),
    ("categories: {a: 1}", "must be a list of names"),
    ("title: !!python/object/apply:os.system ['true']", "front matter line 2"),
    ("a: &bomb [x, x]\nb: [*bomb, *bomb]", "anchors and aliases"),
    ("title: " + "x" * 17_000, "over 16 KB"),
    ("date: 2026-13-45", "month must be in 1..12"),
    ("date: 2026-02-30 10:00:00", "day is out of range"),
    ("a: " + "[" * 5_000 + "]" * 5_000, "line 2: nested more than 10 deep"),
    ("a: " + "{b: " * 3_000 + "1" + "}" * 3_000, "line 2: nested more than 10 deep"),
])
def test_bad_front_matter_is_refused_with_a_reason(meta, message):
    with pytest.raises(InvalidArticle, match=message):
        parse_markdown(front_matter(meta), "https://x.example/a")
