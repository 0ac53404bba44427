"""The automatic subject: cut at a word with "…", never mid-word, and within the column."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from newsletter.issues import copies
from newsletter.issues.copies import MAX_SUBJECT, clean_subject, cut_at_word, default_subject
from newsletter.models import Article


def test_a_short_text_stays_whole():
    assert cut_at_word("Council votes", 300) == "Council votes"


def test_a_long_text_is_cut_after_a_whole_word():
    text = "word " * 100  # 500 characters
    cut = cut_at_word(text.strip(), 52)
    assert cut == "word " * 9 + "word…"
    assert len(cut) <= 52


def test_trailing_punctuation_goes_before_the_ellipsis():
    assert cut_at_word("The council voted, and then the mayor resigned", 22) == "The council voted…"


def test_one_endless_word_is_cut_inside():
    cut = cut_at_word("x" * 400, 300)
    assert cut == "x" * 299 + "…" and len(cut) == 300


@pytest.fixture
def site_named(monkeypatch):
    """The site's name as the settings give it, without a database."""
    monkeypatch.setattr(copies.site_settings, "current",
                        lambda: SimpleNamespace(site_name="The Courier"))


def title_of(length: int) -> str:
    words = ("Parliament", "debates", "the", "budget", "for", "another", "long", "night")
    text = ""
    while len(text) < length:
        text += words[len(text) % len(words)] + " "
    return text.strip()


def test_the_default_subject_keeps_the_count_and_ends_on_a_word(site_named):
    title = title_of(400)
    subject = default_subject([Article(title=title), Article(title="Other")])
    assert subject.startswith("The Courier: Parliament") and subject.endswith("… and 1 more")
    assert len(subject) <= MAX_SUBJECT
    kept = subject.removeprefix("The Courier: ").removesuffix("… and 1 more")
    assert title.startswith(kept + " ")  # a whole word, then the cut


def test_a_single_article_subject_ends_on_a_word(site_named):
    subject = default_subject([Article(title=title_of(400))])
    assert len(subject) <= MAX_SUBJECT and subject.endswith("…")
    assert not subject.removesuffix("…").endswith(" ")


def test_clean_subject_cuts_at_a_word_too():
    subject = clean_subject("news\nof the day " * 40)
    assert len(subject) <= MAX_SUBJECT and subject.endswith("…")
    assert "\n" not in subject
