"""Which links of a sequence step are tracked, and their numbers across edits."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.mail.click_links import web_links
from newsletter.models import SequenceStep
from newsletter.sequences import step_links

BODY = ('<p><a href="https://news.example.com/guide?a=1&amp;b=2">guide</a> '
        '<a href=\'https://news.example.com/faq\'>faq</a> '
        '<a href="https://news.example.com/guide?a=1&amp;b=2">again</a> '
        '<a href="mailto:desk@example.com">write</a> <a href="javascript:alert(1)">x</a> '
        '<a href="https://site.example/news/unsubscribe/KEY">unsubscribe</a> '
        '<a href="https://SITE.example/news/unsubscribe/KEY/preferences">topics</a> '
        '<a href="https://site.example/news/confirm/TOKEN">confirm</a> '
        '<a href="https://site.example/news">home</a> '
        '<a href="https://site.example/newsroom">another site\'s page</a> '
        '<a href="https://site.example.evil.test/news/x">look-alike host</a> '
        '<a href="https://site.example@evil.test/news/x">userinfo trick</a></p>')


@pytest.fixture(autouse=True)
def site():
    app = Flask(__name__)
    app.config["BASE_URL"] = "https://site.example/news/"
    with app.app_context():
        yield


def test_a_bodys_web_links_are_read_once_each_in_order():
    assert web_links(BODY)[:2] == ["https://news.example.com/guide?a=1&b=2",
                                   "https://news.example.com/faq"]
    assert not [url for url in web_links(BODY) if not url.startswith("https://")]


def test_the_sites_own_pages_are_never_tracked():
    assert step_links.trackable(BODY) == [
        "https://news.example.com/guide?a=1&b=2", "https://news.example.com/faq",
        "https://site.example/newsroom", "https://site.example.evil.test/news/x",
        "https://site.example@evil.test/news/x"]


def test_an_edit_appends_new_links_and_keeps_the_numbers_of_old_ones():
    step = SequenceStep(body_html=BODY, tracked_urls=None)  # saved before links were tracked
    assert step_links.numbered(step)["https://news.example.com/faq"] == 2
    new_body = ('<a href="https://news.example.com/new">new</a> '
                '<a href="https://news.example.com/faq">faq</a>')
    step_links.remember(step, [new_body])
    step.body_html = new_body
    assert step_links.numbered(step) == {"https://news.example.com/faq": 2,
                                         "https://news.example.com/new": 6}
    # A copy sent before the edit still has the guide's link: it keeps its target.
    assert step_links.targets(step)[1] == "https://news.example.com/guide?a=1&b=2"
    assert len(step_links.targets(step)) == 6


def test_past_the_limit_an_edits_new_links_go_out_untracked(monkeypatch):
    monkeypatch.setattr(step_links, "MAX_TRACKED_URLS", 3)
    step = SequenceStep(body_html="", tracked_urls=[])
    body = "".join(f'<a href="https://news.example.com/{n}">{n}</a>' for n in range(5))
    step_links.remember(step, [body])
    step.body_html = body
    assert step_links.numbered(step) == {f"https://news.example.com/{n}": n + 1
                                         for n in range(3)}
    step_links.remember(step, [body + '<a href="https://news.example.com/more">more</a>'])
    assert len(step.tracked_urls) == 3


def test_a_translated_bodys_links_are_tracked_too_and_keep_their_numbers():
    step = SequenceStep(body_html='<a href="https://news.example.com/en">en</a>',
                        tracked_urls=None, translations=None)
    french = '<a href="https://news.example.com/fr">fr</a>'
    step_links.remember(step, [step.body_html, french])
    step.translations = {"fr": {"subject": "", "body_markdown": "x", "body_html": french}}
    assert step_links.numbered(step) == {"https://news.example.com/en": 1,
                                         "https://news.example.com/fr": 2}
