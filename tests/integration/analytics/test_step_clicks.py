"""Tracked links in sequence steps through the real stack: a step sent by a real worker
to a real SMTP server, its links clicked through the app, the clicks drained into the
database and counted in the step's issue report."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import update

from newsletter.analytics import reports
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Digest, SequenceStep, Subscriber, utcnow
from newsletter.sequences import runner, steps
from tests.factories import add_editor, add_subscribers, session_client
from tests.helpers import wait_until
from workers.tasks import store_clicks

pytestmark = pytest.mark.usefixtures("clean_state")

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like "
           "Gecko) Version/18.1 Safari/605.1.15")
GUIDE = "https://news.example.com/guide?from=welcome"
FAQ = "https://news.example.com/faq"
BODY = (f"Welcome\n\nStart with [our guide]({GUIDE}), then the [FAQ]({FAQ}).\n\n"
        "Change your topics on [your preferences](http://localhost/preferences/abc) "
        "or see [past issues](http://localhost/archive).")


def step_with_links(app) -> tuple[int, int]:
    """A one-step sequence whose body links two articles and two of the site's pages."""
    with app.app_context(), unit_of_work():
        steps.create_sequence("welcome")
        step = steps.add_step("welcome", "0s", "Welcome", BODY)
        return step.id, step.digest_id


def readers_enter(app, count: int, prefix: str) -> datetime:
    """``count`` readers confirm now and the beat's sequence run queues their step."""
    ids = add_subscribers(app, count, prefix)
    confirmed = utcnow()
    with app.app_context():
        with unit_of_work():
            db.session.execute(update(Subscriber).where(Subscriber.id.in_(ids))
                               .values(confirmed_at=confirmed))
        for sequence_id in runner.sequence_ids():
            with unit_of_work():
                runner.run(sequence_id, now=confirmed)
    return datetime.now(UTC)


def hrefs(message) -> list[str]:
    return re.findall(r'href="([^"]+)"', message.get_body(("html",)).get_content())


def tracked(message) -> list[str]:
    return list(dict.fromkeys(urlsplit(href).path for href in hrefs(message)
                              if href.startswith("http://localhost/r/")))


def click(client, path: str):
    return client.get(path, headers={"User-Agent": BROWSER},
                      environ_base={"REMOTE_ADDR": "203.0.113.20"})


def test_a_steps_links_redirect_and_its_clicks_count_in_the_steps_issue(
        app, client, celery_worker, mailbox):
    step_id, digest_id = step_with_links(app)
    sent_at = readers_enter(app, 2, "reader")
    messages = mailbox.wait_for(2)
    links = [tracked(message) for message in messages]
    assert all(len(found) == 2 for found in links)  # the guide and the FAQ
    # The site's own pages, the unsubscribe link among them, are never tracked.
    for message in messages:
        own = [href for href in hrefs(message) if not href.startswith("http://localhost/r/")]
        assert "http://localhost/preferences/abc" in own
        assert "http://localhost/archive" in own
        assert any(href.startswith("http://localhost/unsubscribe/") for href in own)
        assert GUIDE not in message.get_body(("plain",)).get_content()  # text part too

    # Two readers, one link each, minutes after sending and minutes apart.
    for reader in range(2):
        with time_machine.travel(sent_at + timedelta(minutes=5 + 3 * reader), tick=True):
            response = click(client, links[reader][reader])
        assert response.status_code == 302
        assert response.headers["Location"] == (GUIDE, FAQ)[reader]
    with app.app_context():
        assert store_clicks() == 2
        report = reports.issue_report(db.session.get(Digest, digest_id))
    assert (report.human, report.bot, report.unique_human_copies) == (2, 0, 2)
    assert report.delivered == 2 and report.click_rate == 1.0
    assert report.sections == []  # a step's body has no topic sections

    result = app.test_cli_runner().invoke(args=["stats", "issue", str(digest_id), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["clicks"] == {"human": 2, "bot": 0, "unique_human_copies": 2}
    assert sorted(printed["links"], key=lambda line: line["url"]) == [
        {"url": FAQ, "human": 1, "bot": 0}, {"url": GUIDE, "human": 1, "bot": 0}]

    # The editor reaches the step's report from the sequence's page.
    editor = session_client(app, add_editor(app, "editor@example.com", "editor"))
    with app.app_context():
        sequence_id = db.session.get(SequenceStep, step_id).sequence_id
    page = editor.get(f"/admin/sequences/{sequence_id}").get_data(as_text=True)
    assert f'href="/admin/digests/{digest_id}"' in page
    report_page = editor.get(f"/admin/digests/{digest_id}")
    assert report_page.status_code == 200
    text = report_page.get_data(as_text=True)
    assert "<strong>2</strong> human clicks" in text and html.escape(GUIDE) in text
    assert "Cancel the rest" not in text  # a step's sending is not stopped from here


def test_after_an_edit_old_copies_links_still_redirect_and_new_links_are_tracked(
        app, client, celery_worker, mailbox):
    step_id, digest_id = step_with_links(app)
    sent_at = readers_enter(app, 1, "early")
    [old_copy] = mailbox.wait_for(1)
    old_links = tracked(old_copy)
    with time_machine.travel(sent_at + timedelta(minutes=5), tick=True):
        assert click(client, old_links[0]).headers["Location"] == GUIDE  # caches the links

    news = "https://news.example.com/new-season"
    with app.app_context(), unit_of_work():  # the guide is taken out, a new link comes in
        steps.edit_step(step_id, "0s", "Welcome", f"Welcome\n\nRead [this]({news}) and "
                        f"the [FAQ]({FAQ}).")
    readers_enter(app, 1, "late")
    wait_until(lambda: len(mailbox.messages) == 2, what="the edited step's copy")
    new_copy = mailbox.messages[1]
    new_links = tracked(new_copy)
    assert len(new_links) == 2 and not set(new_links) & set(old_links)  # each copy its own

    with time_machine.travel(sent_at + timedelta(minutes=9), tick=True):
        # The old copy's guide link keeps going to the guide; the new link (not among
        # the links cached before the edit) goes to the new page.
        assert click(client, old_links[0]).headers["Location"] == GUIDE
    with time_machine.travel(sent_at + timedelta(minutes=13), tick=True):
        answers = {click(client, path).headers["Location"] for path in new_links[:1]}
    assert answers == {news}
    with app.app_context():
        assert store_clicks() == 3
        report = reports.issue_report(db.session.get(Digest, digest_id))
        assert db.session.get(SequenceStep, step_id).tracked_urls == [GUIDE, FAQ, news]
    assert {line.url: line.human for line in report.links} == {GUIDE: 2, FAQ: 0, news: 1}
