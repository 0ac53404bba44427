"""Article files with YAML front matter reach the readers of their topics: imported by
`flask articles import`, sent by a real worker to a real SMTP server."""

from __future__ import annotations

import pytest

from newsletter.content import topics
from newsletter.extensions import db
from newsletter.models import Article, Subscriber, SubscriberStatus
from tests.factories import send_now
from tests.helpers import wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

FILES = {
    "berlin.md": '---\ntitle: "Berlin: a vote"\ndate: 2026-11-20\ncategories: ["Europe"]\n'
                 "url: https://news.example.com/berlin\n---\nThe vote was close.\n",
    "paris.md": "---\ntitle: Paris talks\ncategories:\n  - Europe\n  - News\n"
                "url: https://news.example.com/paris\n---\nTalks went on.\n",
    "tokyo.md": "---\ntitle: Tokyo summit\ntags: Asia-Pacific\n"
                "url: https://news.example.com/tokyo\n---\nLeaders met.\n",
}


def test_front_matter_lists_file_articles_under_their_topics(app, mailbox, tmp_path,
                                                             monkeypatch):
    # Untracked links: each reader's articles are told apart by their URLs in the mail.
    monkeypatch.setitem(app.config, "TRACK_CLICKS", False)
    paths = []
    for name, text in FILES.items():
        paths.append(str(tmp_path / name))
        (tmp_path / name).write_text(text, encoding="utf-8")
    with app.app_context():
        topics.create_topic("asia", "Asia", categories=["Asia-Pacific"])
        topics.create_topic("europe", "Europe", categories=["Europe"])
        for slug in ("asia", "europe"):
            reader = Subscriber(email=f"{slug}@example.com", email_normalized=f"{slug}@example.com",
                                status=SubscriberStatus.ACTIVE)
            db.session.add(reader)
            db.session.flush()
            topics.set_reader_topics(reader, topics.topics_by_slugs([slug]))
        db.session.commit()
        result = app.test_cli_runner().invoke(args=["articles", "import", *paths])
        assert result.exit_code == 0, result.output
        assert db.session.scalar(
            db.select(Article.categories).where(Article.url.endswith("/paris"))) == [
            "Europe", "News"]

    wait_until_sent(app, send_now(app))
    got = {}
    for message in mailbox.messages:
        text = message.get_body(("plain",)).get_content()
        got[message["To"].addresses[0].username] = sorted(
            place for place in ("berlin", "paris", "tokyo")
            if f"https://news.example.com/{place}" in text)
    assert got == {"europe": ["berlin", "paris"], "asia": ["tokyo"]}


def test_a_file_with_broken_front_matter_is_refused_naming_the_line(app, tmp_path):
    good = tmp_path / "good.md"
    good.write_text("---\ntitle: Fine\nurl: https://news.example.com/fine\n---\nBody.\n")
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: Broken\ncategories: [Europe\nurl: https://news.example.com/b\n"
                   "---\nBody.\n")
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["articles", "import", str(bad), str(good)])
        assert result.exit_code == 1
        assert "bad.md: skipped: front matter line 4" in result.output
        assert db.session.scalars(db.select(Article.url)).all() == [
            "https://news.example.com/fine"]
