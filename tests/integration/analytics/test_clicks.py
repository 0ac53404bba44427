"""Click analytics through the real stack: a digest sent by a real worker to a real
SMTP server, its tracked links clicked through the app, clicks queued in a real Redis
and drained into the database by the task body."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import delete, event, select

from newsletter.analytics import clicks, reports
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.mail.click_links import LinkSigner
from newsletter.models import Click, Digest, Verdict
from tests.factories import add_article, add_subscribers, send_now
from tests.helpers import wait_until_sent
from workers.tasks import store_clicks

BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")
ARTICLES = {"https://news.example.com/geneva": "Talks resume in Geneva",
            "https://news.example.com/harbour?edition=2&lang=en": "The harbour reopens",
            "https://news.example.com/budget": "A budget at last"}
# Scanners as they come: link checkers' user agents, a security gateway's network
# (with a browser's user agent), and one that looks like a browser from anywhere.
SCANNERS = [("python-requests/2.31.0", "198.51.100.7"),
            ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "198.51.100.8"),
            ("LinkChecker/10.2", "198.51.100.9"),
            (BROWSER, "40.107.22.5"),
            (BROWSER, "198.51.100.10")]


def tracked_links(message) -> list[str]:
    html = message.get_body(("html",)).get_content()
    return re.findall(r'href="(http://localhost/r/[^"]+)"', html)


def path_of(url: str) -> str:
    return urlsplit(url).path


def drain(app) -> int:
    with app.app_context():
        return store_clicks()


@pytest.fixture
def sent(app, client, celery_worker, mailbox):
    """A digest of three articles sent to 20 readers: (issue id, each reader's links)."""
    add_subscribers(app, 20)
    for url, title in ARTICLES.items():
        add_article(app, title=title, url=url)
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    messages = mailbox.wait_for(20)
    links = [tracked_links(message) for message in messages]
    assert all(len(set(found)) == 3 for found in links)  # 3 articles, each once or twice
    sent_at = datetime.now(UTC)
    return digest_id, [list(dict.fromkeys(found)) for found in links], sent_at


def test_people_are_counted_and_scanners_are_not(app, client, sent):
    digest_id, links, sent_at = sent
    scanner_hits = 0
    # Scanners strike 40 s after delivery: HEAD, then GET of every link, within a second.
    with time_machine.travel(sent_at + timedelta(seconds=40), tick=True):
        for reader, (agent, address) in enumerate(SCANNERS, start=5):
            for method in ("HEAD", "GET"):
                for url in links[reader]:
                    response = client.open(path_of(url), method=method,
                                           headers={"User-Agent": agent},
                                           environ_base={"REMOTE_ADDR": address})
                    assert response.status_code == 302
                    scanner_hits += 1
    # Five readers, each one link, minutes later and minutes apart.
    for reader in range(5):
        moment = sent_at + timedelta(minutes=10 + 3 * reader)
        with time_machine.travel(moment, tick=True):
            url = links[reader][reader % 3]
            response = client.get(path_of(url), headers={"User-Agent": BROWSER},
                                  environ_base={"REMOTE_ADDR": f"203.0.113.{reader + 1}"})
        assert response.status_code == 302
        assert response.headers["Location"] in ARTICLES  # every link: the article itself
    assert drain(app) == scanner_hits + 5

    with app.app_context():
        report = reports.issue_report(db.session.get(Digest, digest_id))
        rows = db.session.execute(select(Click.at, Click.verdict, Click.reason)).all()
    assert report.human == 5 and report.unique_human_copies == 5
    assert report.bot >= 0.8 * scanner_hits  # the bar; in fact every one:
    assert report.bot == scanner_hits, [row for row in rows if row[1] is Verdict.HUMAN]
    human_times = sorted(at for at, verdict, _ in rows if verdict is Verdict.HUMAN)
    assert human_times[0] >= sent_at + timedelta(minutes=10)  # no scanner counted human
    assert report.delivered == 20 and report.click_rate == 5 / 20
    assert sum(line.human for line in report.links) == 5
    assert {line.url for line in report.links} == set(ARTICLES)

    result = app.test_cli_runner().invoke(args=["stats", "issue", str(digest_id), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert list(printed) == ["recipients", "delivered", "clicks", "links", "opens"]
    assert printed["clicks"] == {"human": 5, "bot": report.bot, "unique_human_copies": 5}
    assert printed["opens"] is None and printed["recipients"] == 20
    assert sorted(printed["links"], key=lambda line: line["url"]) == sorted(
        ({"url": line.url, "human": line.human, "bot": line.bot} for line in report.links),
        key=lambda line: line["url"])


def test_every_tracked_link_goes_to_its_article_and_a_query_string_is_not_forwarded(
        app, client, sent):
    digest_id, links, sent_at = sent
    with time_machine.travel(sent_at + timedelta(minutes=5), tick=True):
        for url in links[0]:
            plain = client.get(path_of(url), headers={"User-Agent": BROWSER})
            tampered = client.get(path_of(url) + "?next=https://evil.example/&utm=x",
                                  headers={"User-Agent": BROWSER})
            assert plain.status_code == tampered.status_code == 302
            assert plain.headers["Location"] == tampered.headers["Location"]
            assert plain.headers["Location"] in ARTICLES
            assert "evil" not in tampered.headers["Location"]


def forged_paths(app, digest_id: int, link_url: str) -> list[str]:
    link_token, copy_token = path_of(link_url).split("/")[2:4]
    ours = LinkSigner([app.config["SECRET_KEY"]])
    theirs = LinkSigner(["an attacker's key of thirty-two bytes!"])
    with app.app_context():
        in_issue = {article.id for article in db.session.get(Digest, digest_id).articles}
    absent_link = max(in_issue) + 1000
    flipped = link_token[:5] + ("A" if link_token[5] != "A" else "B") + link_token[6:]
    return [
        f"/r/{flipped}/{copy_token}",  # altered
        f"/r/{link_token[:-2]}/{copy_token}",  # truncated
        f"/r/{link_token}AA/{copy_token}",  # padded
        f"/r/{link_token}=/{copy_token}",
        f"/r/{link_token}/{copy_token[:-1]}",
        f"/r/{link_token}",  # no copy
        f"/r/{theirs.link_token(digest_id, None, min(in_issue))}/"
        f"{theirs.copy_token(digest_id, 1, 1)}",  # another key
        f"/r/{ours.link_token(digest_id + 77, None, min(in_issue))}/"
        f"{ours.copy_token(digest_id + 77, 1, 1)}",  # an issue that is not there (erased)
        f"/r/{ours.link_token(digest_id, None, absent_link)}/"
        f"{ours.copy_token(digest_id, 1, 1)}",  # a link the issue does not have
        f"/r/{ours.link_token(digest_id, None, 0)}/{ours.copy_token(digest_id, 1, 1)}",
        f"/r/{copy_token}/{link_token}",  # swapped
        "/r/" + "%00" * 28 + "/" + "x" * 28,
        "/r/" + "A" * 5000 + "/" + "B" * 28,
    ]


def test_forged_tokens_are_404_without_a_location(app, client, sent):
    digest_id, links, _ = sent
    for path in forged_paths(app, digest_id, links[0][0]):
        for method in ("GET", "HEAD"):
            response = client.open(path, method=method, headers={"User-Agent": BROWSER})
            assert response.status_code == 404, path
            assert "Location" not in response.headers, path
    assert drain(app) == 0  # nothing recorded


def test_a_flood_on_one_token_is_answered_counted_as_bot_and_stored_at_a_bounded_rate(
        app, client, sent):
    digest_id, links, sent_at = sent
    with time_machine.travel(sent_at + timedelta(minutes=30), tick=False):
        answers = [client.get(path_of(links[3][0]), headers={"User-Agent": BROWSER},
                              environ_base={"REMOTE_ADDR": f"198.51.100.{n % 200}"})
                   for n in range(200)]
    assert all(response.status_code == 302 for response in answers)
    stored = drain(app)
    assert stored == clicks.FLOOD_STORED
    with app.app_context():
        verdicts = set(db.session.scalars(select(Click.verdict)))
    assert verdicts == {Verdict.BOT}  # the first few, judged one by one, relabelled too


def test_the_redirect_needs_no_database_once_the_issue_is_known(app, client, sent):
    digest_id, links, sent_at = sent
    statements = []
    with time_machine.travel(sent_at + timedelta(minutes=5), tick=True):
        client.get(path_of(links[1][0]), headers={"User-Agent": BROWSER})  # caches the links
        with app.app_context():
            engine = db.engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            response = client.get(path_of(links[1][1]), headers={"User-Agent": BROWSER})
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert response.status_code == 302
    assert statements == []
    assert drain(app) == 2


def erase(app, digest_id: int, how: str) -> None:
    """The issue and every row naming it, in one transaction: by the ORM object or by
    one bulk statement."""
    with app.app_context(), unit_of_work():
        for table in reversed(db.metadata.sorted_tables):
            naming = [column for column in table.columns
                      if any(key.column is Digest.__table__.c.id for key in column.foreign_keys)]
            for column in naming:
                db.session.execute(delete(table).where(column == digest_id))
        if how == "orm":
            db.session.delete(db.session.get(Digest, digest_id))
        else:
            db.session.execute(delete(Digest).where(Digest.id == digest_id))


@pytest.mark.parametrize("how", ["orm", "bulk"])
def test_an_erased_issue_is_404_at_once_though_its_links_were_cached(app, client, sent, how):
    digest_id, links, sent_at = sent
    with time_machine.travel(sent_at + timedelta(minutes=5), tick=True):
        first = client.get(path_of(links[4][0]), headers={"User-Agent": BROWSER})
        assert first.status_code == 302  # the issue's links are cached now
        erase(app, digest_id, how)
        for url in links[4]:
            for method in ("GET", "HEAD"):
                response = client.open(path_of(url), method=method,
                                       headers={"User-Agent": BROWSER})
                assert response.status_code == 404, (url, method)
                assert "Location" not in response.headers
    assert drain(app) == 0  # the click before the erasure went with its issue


def test_with_redis_down_a_click_is_answered_and_written_straight_to_the_database(
        app, client, sent):
    digest_id, links, sent_at = sent
    from newsletter.devstack import free_port

    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with time_machine.travel(sent_at + timedelta(minutes=5), tick=True):
        response = client.get(path_of(links[2][1]), headers={"User-Agent": BROWSER})
    assert response.status_code == 302 and response.headers["Location"] in ARTICLES
    with app.app_context():
        stored = db.session.execute(select(Click.digest_id, Click.verdict)).all()
    assert stored == [(digest_id, Verdict.HUMAN)]


def test_a_drain_whose_lock_expired_stops_before_its_next_batch(app, client, sent, monkeypatch):
    """A backlog longer than the lock's timeout: once another drain holds the lock,
    this one takes no more records (two would trim each other's)."""
    digest_id, links, sent_at = sent
    with time_machine.travel(sent_at + timedelta(minutes=5), tick=True):
        for url in links[6]:
            assert client.get(path_of(url), headers={"User-Agent": BROWSER}).status_code == 302
    real_batch, others = clicks.store_batch, []

    def batch_then_lose_the_lock(limit=1):
        drained = real_batch(limit=1)
        clicks.redis_client().delete(clicks.drain_lock().name)  # this drain's lock expired
        others.append(clicks.drain_lock())
        assert others[0].acquire()  # ... and another drain began
        return drained

    monkeypatch.setattr(clicks, "DRAIN_BATCH", 1)
    monkeypatch.setattr(clicks, "store_batch", batch_then_lose_the_lock)
    assert drain(app) == 1
    with app.app_context():
        assert clicks.waiting() == 2  # left for the drain that holds the lock
        assert others[0].owned()
