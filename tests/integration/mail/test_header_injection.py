"""CVE-2024-6923 payloads through every way a header value comes in, out through the
real worker and SMTP server: each received message has exactly the expected headers.

Ways in: a feed served over HTTP to the poller (run by the worker), the articles
API with a token, ``flask articles import`` of files, the editor's compose form
(send and send-test), and subscribers' names.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr

import pytest
from sqlalchemy import insert, select

from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.issues.copies import cut_at_word
from newsletter.mail.headers import clean_text, neutralise
from newsletter.models import Article, MailTemplate, Subscriber, SubscriberStatus
from newsletter.queue import send_task_now
from tests.factories import add_article, add_subscribers, api_token, make_editor, send_now
from tests.helpers import csrf_token_from, login, wait_until, wait_until_sent
from tests.integration.feed_server import ALLOWED_HOST, ALLOWED_NETWORKS, rss, serve

EVIL = "\r\nReply-To: a@evil.example"
PAYLOADS = {
    "q-encoded CRLF": "Hi =?utf-8?q?=0D=0AReply-To:_a@evil.example?=",
    "b-encoded CRLF": "Hi =?utf-8?b?" + base64.b64encode(EVIL.encode()).decode() + "?=",
    "exactly an encoded word, bare LF": "=?utf-8?q?=0ABcc:_victim@evil.example?=",
    "encoded U+2028": "=?utf-8?q?=E2=80=A8Reply-To:_a@evil.example?=",
    "raw U+2028": "Summit\u2028Reply-To: a@evil.example",
    "raw CRLF": "Summit\r\nBcc: a@evil.example",
    "NUL and C1": "Nul\x00Bcc: a@evil.example\x85Cc: b@evil.example",
    "long non-ASCII that folds": "Ελλάδα: συνομιλίες " * 14
                                 + "=?utf-8?q?=0D=0ACc:_a@evil.example?= Zoë’s end",
}
SITE = "The Newsletter"
REQUIRED = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
            "content-language"}
DIGEST_REQUIRED = REQUIRED | {"list-id", "list-archive", "list-unsubscribe",
                              "list-unsubscribe-post"}
NEVER = {"reply-to", "bcc", "cc", "sender", "resent-to"}


def header_names(message: EmailMessage) -> Counter:
    return Counter(name.lower() for name in message)


def reparsed_names(message: EmailMessage) -> Counter:
    """Serialise what was received (the email package re-folds every header: where
    the CVE bites) and parse it again, strictly by the old rules."""
    again = message_from_bytes(message.as_bytes(policy=policy.SMTP), policy=policy.compat32)
    return Counter(name.lower() for name in again)


def assert_same_headers(message: EmailMessage, baseline: EmailMessage) -> None:
    assert header_names(message) == header_names(baseline), message.items()
    assert reparsed_names(message) == header_names(baseline), message.items()
    assert not NEVER & set(header_names(message))


def article_subject(payload: str) -> str:
    """What the Subject decodes to: the title as stored (neutralised, at most 500
    characters) in the default subject, cut at a word within 300, neutralised again on
    the way out."""
    head = f"{SITE}: "
    title = cut_at_word(clean_text(neutralise(payload)[:500]), 300 - len(head))
    return neutralise(cut_at_word(head + title, 300))


class Outbox:
    """The received messages, one batch at a time."""

    def __init__(self, mailbox):
        self.mailbox, self.seen = mailbox, 0

    def next(self, count: int = 1) -> list[EmailMessage]:
        messages = self.mailbox.wait_for(self.seen + count)[self.seen:self.seen + count]
        self.seen += count
        return messages


def send_digest_and_receive(app, received: Outbox, readers: int = 1) -> list[EmailMessage]:
    wait_until_sent(app, send_now(app))
    return received.next(readers)


def check_digest(app, message: EmailMessage, baseline: EmailMessage, payload: str,
                 url: str) -> None:
    assert_same_headers(message, baseline)
    assert message["Subject"] == article_subject(payload)
    assert message["To"].addresses[0].addr_spec == "reader0@example.com"
    with app.app_context():
        title = db.session.scalar(select(Article.title).where(Article.url == url))
    assert title == neutralise(payload)[:500]  # imported, neutralised


@pytest.fixture
def baseline(app, client, celery_worker, mailbox):
    """One reader and a digest of a harmless article: the header set every digest has."""
    add_subscribers(app, 1)
    add_article(app, title="Harmless", url="https://news.example.com/harmless")
    received = Outbox(mailbox)
    [message] = send_digest_and_receive(app, received)
    assert set(header_names(message)) >= DIGEST_REQUIRED and not NEVER & set(message.keys())
    assert max(header_names(message).values()) == 1
    return message, received


def test_titles_from_a_feed_polled_by_the_worker(app, baseline, feed_settings):
    first, received = baseline
    served: dict[str, bytes] = {}

    def route(handler):
        handler.reply(served["feed"], ETag=f'"{len(served["feed"])}"')

    with serve(ALLOWED_HOST, route) as server:
        app.config["FEEDS"] = (server.url + "/feed",)
        for number, (name, payload) in enumerate(PAYLOADS.items()):
            if "\x00" in payload:  # XML cannot carry NUL; the API and files do
                continue
            url = f"https://news.example.com/feed-{number}"
            served["feed"] = rss((payload, url))
            with app.app_context():
                assert send_task_now("workers.tasks.poll_feeds")  # fans out poll_feed tasks
            wait_for_article(app, url, name)
            [message] = send_digest_and_receive(app, received)
            check_digest(app, message, first, payload, url)
    assert len(server.requests) >= 7


def wait_for_article(app, url: str, name: str, timeout: float = 30) -> None:
    def imported():
        with app.app_context():
            return db.session.scalar(select(Article.id).where(Article.url == url))

    wait_until(imported, timeout, f"the worker to import {name!r} from the feed", interval=0.1)


def test_titles_from_the_articles_api(app, baseline):
    first, received = baseline
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(app)}"}
    for number, payload in enumerate(PAYLOADS.values()):
        url = f"https://news.example.com/api-{number}"
        response = client.post("/api/v1/articles", headers=headers, json={
            "title": payload, "url": url, "author": payload, "categories": [payload]})
        if "\x00" in payload:  # refused at the door, with the reason, and nothing stored
            assert response.status_code == 400
            assert "NUL" in response.get_json()["error"]
            continue
        assert response.status_code == 201, response.get_json()
        [message] = send_digest_and_receive(app, received)
        check_digest(app, message, first, payload, url)


def html_page(title: str, url: str) -> str:
    attribute = (html.escape(title).replace("\r", "&#13;").replace("\n", "&#10;")
                 .replace("\x00", "&#0;"))
    return (f'<html><head><meta property="og:title" content="{attribute}">'
            f'<link rel="canonical" href="{url}"></head><body><p>Text.</p></body></html>')


def test_titles_from_imported_files(app, baseline, tmp_path):
    first, received = baseline
    runner = app.test_cli_runner()
    files = []
    for number, payload in enumerate(PAYLOADS.values()):
        url = f"https://news.example.com/file-{number}"
        path = tmp_path / f"page-{number}.html"
        path.write_text(html_page(payload, url), encoding="utf-8")
        files.append((path, payload.replace("\x00", "\ufffd"), url))  # &#0; reads as U+FFFD
    single_line = PAYLOADS["q-encoded CRLF"]
    markdown = tmp_path / "note.md"
    markdown.write_text(f"---\ntitle: {single_line}\nurl: https://news.example.com/md\n---\nText.")
    scraped = tmp_path / "scraped.txt"
    scraped.write_text(f"{PAYLOADS['raw U+2028'].replace(chr(0x2028), ' ')} "
                       f"{single_line}\nWorld, News No Comments on It\nBody.\n")
    files += [(markdown, single_line, "https://news.example.com/md"),
              (scraped, neutralise(scraped.read_text().splitlines()[0]),
               app.config["BASE_URL"] + "/articles/scraped")]
    for path, payload, url in files:
        result = runner.invoke(args=["articles", "import", str(path)])
        assert result.exit_code == 0 and "imported" in result.output, result.output
        [message] = send_digest_and_receive(app, received)
        check_digest(app, message, first, payload, url)


def test_subjects_from_the_editors_compose_form(app, baseline):
    first, received = baseline
    make_editor(app)
    client = app.test_client()
    assert login(client).status_code == 302
    test_mails = []
    for number, payload in enumerate(["Our week", *PAYLOADS.values()]):
        add_article(app, title=f"Article {number}", url=f"https://news.example.com/ed-{number}")
        token = csrf_token_from(client, "/admin/digests")
        if "\x00" in payload:  # a NUL in a form is refused at the door, nothing sent
            response = client.post("/admin/digests/test",
                                   data={"csrf_token": token, "subject": payload})
            assert response.status_code == 400  # the test mail is sent within the request:
            assert len(received.mailbox.messages) == received.seen  # so none went out
            continue
        # "Send a test" first: a single EmailMessage (newsletter.mail.message).
        response = client.post("/admin/digests/test",
                               data={"csrf_token": token, "subject": payload})
        assert response.status_code == 200
        [test_mail] = received.next()
        test_mails.append(test_mail)
        assert_same_headers(test_mail, test_mails[0])
        # The test shows the subject exactly as the send will carry it (cut at a word
        # within 300).
        assert test_mail["Subject"] == neutralise(
            "[Test] " + cut_at_word(clean_text(payload), 300))
        assert test_mail["To"].addresses[0].addr_spec == "editor@example.com"
        # Then the send itself: the hand-built digest (newsletter.mail.bulk).
        with app.app_context():
            readers = str(digests.active_subscriber_count())
        response = client.post("/admin/digests/send", data={
            "csrf_token": token, "subject": payload, "confirmed": readers})
        assert response.status_code == 302, response.get_data(as_text=True)
        wait_until_sent(app, int(response.headers["Location"].rsplit("/", 1)[1]))
        [message] = received.next()
        assert_same_headers(message, first)
        assert message["Subject"] == neutralise(cut_at_word(clean_text(payload), 300))
    assert set(header_names(test_mails[0])) >= REQUIRED


def decoded_display_name(message: EmailMessage) -> str:
    """As RFC 2047 decodes it (policy.default's phrase parser adds a space between
    adjacent encoded words)."""
    raw = message.as_bytes(policy=policy.SMTP)
    name, _ = parseaddr(message_from_bytes(raw, policy=policy.compat32)["To"])
    return str(make_header(decode_header(name))) if "=?" in name else name


def test_names_never_add_a_header(app, baseline):
    first, received = baseline
    # Names are refused at the door (check_name); these stand for rows that got in
    # another way (an old import, a database edit): the header writer is safe alone.
    names = {f"named{number}@example.com": payload.replace("\x00", "\x01")[:200]  # the column
             for number, payload in enumerate(PAYLOADS.values())}
    names["quoted@example.com"] = 'Ada "the Countess" Lovelace, \\ <ada@evil.example>'
    with app.app_context():
        db.session.execute(insert(Subscriber), [
            {"email": email, "email_normalized": email, "name": name,
             "status": SubscriberStatus.ACTIVE} for email, name in names.items()])
        db.session.commit()
    add_article(app, title="Names", url="https://news.example.com/names")
    messages = send_digest_and_receive(app, received, readers=len(names) + 1)
    by_address = {message["To"].addresses[0].addr_spec: message for message in messages}
    assert set(by_address) == set(names) | {"reader0@example.com"}
    for email, name in names.items():
        message = by_address[email]
        assert_same_headers(message, first)
        assert decoded_display_name(message) == neutralise(name)
        assert message["Subject"] == f"{SITE}: Names"

    # A welcome mail (a single EmailMessage) to a reader with such a name.
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(
            Subscriber.email == "named0@example.com"))
        outbox.owe(subscriber.id, MailTemplate.WELCOME)
        db.session.commit()
    [welcome] = received.next()
    assert welcome["To"].addresses[0].addr_spec == "named0@example.com"
    assert decoded_display_name(welcome) == neutralise(names["named0@example.com"])
    assert set(header_names(welcome)) == REQUIRED | {"list-id", "list-unsubscribe",
                                                     "list-unsubscribe-post"}
    assert reparsed_names(welcome) == header_names(welcome)


@pytest.fixture
def feed_settings(app):
    keys = ("FEED_ALLOW_HTTP", "FEED_ALLOWED_NETWORKS", "FEEDS")
    saved = {key: app.config[key] for key in keys}
    app.config.update(FEED_ALLOW_HTTP=True, FEED_ALLOWED_NETWORKS=ALLOWED_NETWORKS)
    yield
    app.config.update(saved)
