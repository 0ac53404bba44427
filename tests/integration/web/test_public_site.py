"""The public site: navigation, the archive (index, issue pages, Atom feed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta

import feedparser
import pytest

from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.models import (
    AddressChange,
    Digest,
    DigestStatus,
    MailTemplate,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from tests.factories import add_article, make_editor
from tests.helpers import csrf_token_from, login

ATOM = "{http://www.w3.org/2005/Atom}"
DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def add_issue(app, subject, status=DigestStatus.SENT, days=0) -> int:
    with app.app_context():
        started = DAY + timedelta(days=days) if status in (
            DigestStatus.SENDING, DigestStatus.PAUSED, DigestStatus.SENT) else None
        digest = Digest(subject=subject, status=status, started_at=started,
                        send_at=DAY + timedelta(days=30) if status == DigestStatus.SCHEDULED
                        else None)
        db.session.add(digest)
        db.session.commit()
        return digest.id


@pytest.fixture
def issues(app):
    """One issue in every state; the three public ones a day apart."""
    return {
        "sent": add_issue(app, "First week", DigestStatus.SENT, 0),
        "paused": add_issue(app, "Second week", DigestStatus.PAUSED, 1),
        "sending": add_issue(app, "Third week", DigestStatus.SENDING, 2),
        "draft": add_issue(app, "Draft issue", DigestStatus.DRAFT),
        "scheduled": add_issue(app, "Scheduled issue", DigestStatus.SCHEDULED),
        "cancelled": add_issue(app, "Cancelled issue", DigestStatus.CANCELLED),
    }


def text(response) -> str:
    return response.get_data(as_text=True)


def test_every_public_page_has_the_site_header(app, client):
    for path in ["/subscribe", "/archive/", "/subscribe/thanks", "/no/such/page",
                 "/confirm/not-a-token", "/unsubscribe/not-a-key"]:
        page = text(client.get(path))
        assert re.search(r'<a class="brand" href="/archive/">The Newsletter</a>', page), path
        assert '<a href="/subscribe">Subscribe</a>' in page, path


def test_the_404_page_leads_to_the_archive_and_the_form(app, client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert 'href="/archive/">Browse past issues' in text(response)
    assert 'href="/subscribe">Go to the subscribe page' in text(response)


def test_archive_lists_issues_that_reached_readers_newest_first_with_dates(app, client, issues):
    page = text(client.get("/archive/"))
    assert [s for s in re.findall(r">([A-Z][a-z]+ (?:week|issue))</a>", page)] == [
        "Third week", "Second week", "First week"]
    assert '<time datetime="2026-03-02">02 March 2026</time>' in page
    for hidden in ["draft", "scheduled", "cancelled"]:
        assert client.get(f"/archive/{issues[hidden]}").status_code == 404
        assert client.get(f"/archive/{issues[hidden]}/mail").status_code == 404


def test_issue_page_has_date_and_previous_next_links(app, client, issues):
    middle = text(client.get(f"/archive/{issues['paused']}"))
    assert "<h1>Second week</h1>" in middle and "03 March 2026" in middle
    assert f'<a rel="prev" href="/archive/{issues["sent"]}">' in middle
    assert f'<a rel="next" href="/archive/{issues["sending"]}">' in middle
    first = text(client.get(f"/archive/{issues['sent']}"))
    assert 'rel="prev"' not in first and f'href="/archive/{issues["paused"]}"' in first
    last = text(client.get(f"/archive/{issues['sending']}"))
    assert 'rel="next"' not in last


def test_issues_started_the_same_second_are_all_reachable(app, client):
    ids = [add_issue(app, f"Twin {n}") for n in range(3)]
    following = [re.search(r'rel="next" href="/archive/(\d+)"', text(client.get(f"/archive/{i}")))
                 for i in ids]
    assert [int(m.group(1)) for m in following[:2]] == ids[1:] and following[2] is None


def test_atom_feed_is_valid_escaped_and_absolute(app, client, issues):
    add_issue(app, 'Tom & "Jerry" <b>bold</b>\x01', DigestStatus.SENT, 5)
    response = client.get("/archive/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root = ElementTree.fromstring(response.data)  # well-formed, or this raises
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}title") == "The Newsletter: past issues"
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {"self": "http://localhost/archive/feed.atom",
                     "alternate": "http://localhost/archive/"}
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        'Tom & "Jerry" <b>bold</b>', "Third week", "Second week", "First week"]
    for entry in entries:
        href = entry.find(f"{ATOM}link").get("href")
        assert re.fullmatch(r"http://localhost/archive/\d+", href)
        assert entry.findtext(f"{ATOM}id") == href
    assert entries[0].findtext(f"{ATOM}updated") == "2026-03-07T08:00:00Z"
    assert b"<b>" not in response.data  # escaped, not markup

    parsed = feedparser.parse(response.data)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10" and len(parsed.entries) == 4


def test_empty_feed_is_still_valid(app, client):
    parsed = feedparser.parse(client.get("/archive/feed.atom").data)
    assert not parsed.bozo and parsed.version == "atom10" and parsed.entries == []


def test_archive_pages_announce_the_feed(app, client, issues):
    link = '<link rel="alternate" type="application/atom+xml"'
    for path in ["/archive/", f"/archive/{issues['sent']}"]:
        assert link in text(client.get(path))


def test_workspace_links_only_to_archive_pages_that_exist(app, client, issues):
    make_editor(app)
    login(client)
    for state, digest_id in issues.items():
        page = text(client.get(f"/admin/digests/{digest_id}"))
        linked = f'href="/archive/{digest_id}"' in page
        assert linked == (state in ("sent", "paused", "sending")), state


def test_a_test_mails_unsubscribe_link_says_it_is_a_test(app, client, celery_worker, mailbox):
    make_editor(app)
    login(client)
    add_article(app)
    token = csrf_token_from(client, "/admin/digests")
    client.post("/admin/digests/test", data={"csrf_token": token, "subject": "Our week"})
    [test_mail] = mailbox.wait_for(1)
    body = test_mail.get_body(("plain",)).get_content()
    assert "Unsubscribe: http://localhost/test-mail" in body.splitlines()
    assert "/subscribe" not in body
    page = app.test_client().get("/test-mail")
    assert page.status_code == 200 and "This was a test mail" in text(page)


def test_text_footers_name_the_site_once(app):
    with app.app_context():
        reader = Subscriber(id=7, email="ada@example.com", token_nonce="n", unsubscribe_key="k",
                            status=SubscriberStatus.ACTIVE)
        change = AddressChange(old_email="ada@old.example", undo_key="u", changed_at=utcnow())
        for template in MailTemplate:  # the change is for the old address's notice only
            footer = outbox.render(template, reader, change).text.split("\n--\n")[1]
            assert footer.count("The Newsletter") == 1, (template, footer)


def test_pages_promising_a_mail_name_the_limits_that_may_hold_it_back(app, client):
    assert "one such mail every 5 minutes and 3 a day" in text(client.get("/subscribe/thanks"))
    answer = client.post("/api/v1/subscriptions", json={"email": "x@example.com"}).get_json()
    assert "unless one was sent to it in the last 300 seconds (at most 3 a day)" in \
        answer["message"]
