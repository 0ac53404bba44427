"""Every page of the app at a desktop and a phone width: nothing wider than the window,
and no critical or serious accessibility violation (axe-core, WCAG 2.1 A and AA).

The seed data carries long unbroken words (a 300-character title, long URLs and
addresses), so a page that lets them widen it fails here. Each page is also saved as
tests/e2e/screenshots/<page>-<width>.png to look at.

To cover a new page, add it to PUBLIC_PAGES or EDITOR_PAGES ({name} fields come
from ``seed``); pages that need a click to reach are checked in the test itself.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select
from werkzeug.serving import make_server

from newsletter import create_app
from newsletter.bounces import intake
from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.devstack import free_port
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import (
    AddressChange,
    ConsentSource,
    Editor,
    ImportStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import subscriber_lists, subscriptions
from newsletter.readers.subscriptions import Origin
from tests.factories import make_editor
from tests.helpers import (
    app_config,
    axe_problems,
    log_in,
    screenshot,
    wait_until,
    wait_until_sent,
)
from workers.tasks import run_import

WIDTHS = (1280, 375)
LONG_WORD = "Unbroken" + "x" * 292  # 300 characters, no break opportunity
LONG_URL = "https://news.example.com/" + "a" * 250
LONG_ADDRESS = "r" * 64 + "@" + "d" * 60 + "." + "e" * 60 + ".example.com"

# (screenshot name, path): the pages anyone sees, visited logged out.
PUBLIC_PAGES = [
    ("subscribe", "/subscribe"),
    ("subscribe-thanks", "/subscribe/thanks"),
    ("confirm", "/confirm/{confirm_token}"),
    ("confirmed", "/confirm/{active_confirm_token}"),
    ("unsubscribe", "/unsubscribe/{unsubscribe_key}"),
    ("preferences", "/unsubscribe/{unsubscribe_key}/preferences"),
    ("undo-address", "/undo-address/{undo_key}"),
    ("keep", "/keep/{keep_token}"),
    ("unsubscribe-link", "/unsubscribe-link"),
    ("test-mail", "/test-mail"),
    ("bad-link", "/confirm/not-a-real-token"),
    ("not-found", "/no-such-page"),
    ("archive", "/archive/"),
    ("archive-issue", "/archive/{digest}"),
    ("archive-topics", "/archive/topics/"),
    ("archive-topic", "/archive/topics/{topic_slug}/"),
    ("article", "/articles/{slug}"),
    ("admin-login", "/admin/login"),
    ("dev-mail", "/dev/mail/"),
    ("dev-mail-message", "/dev/mail/{mail}"),
]
# The workspace, as an owner (who sees every page).
EDITOR_PAGES = [
    ("admin-dashboard", "/admin/"),
    ("admin-digests", "/admin/digests"),
    ("admin-digest-report", "/admin/digests/{digest}"),
    ("admin-articles", "/admin/articles"),
    ("admin-article-new", "/admin/articles/new"),
    ("admin-article-edit", "/admin/articles/{article}/edit"),
    ("admin-subscribers", "/admin/subscribers"),
    ("admin-subscriber", "/admin/subscribers/{subscriber}"),
    ("admin-subscriber-pending", "/admin/subscribers/{pending}"),
    ("admin-subscriber-new", "/admin/subscribers/new"),
    ("admin-import", "/admin/subscribers/import"),
    ("admin-import-report", "/admin/subscribers/import/{import_job}"),
    ("admin-bounces", "/admin/bounces/"),
    ("admin-topics", "/admin/topics/"),
    ("admin-topic", "/admin/topics/{topic}"),
    ("admin-settings", "/admin/settings/"),
    ("admin-settings-preview", "/admin/settings/preview/welcome"),
    ("admin-tokens", "/admin/tokens"),
    ("admin-editors", "/admin/editors"),
    ("admin-audit", "/admin/audit"),
    ("admin-account", "/admin/account"),
]

# A mail shown as a page of its own runs no script at all (its policy sandboxes it), so
# axe cannot run in it here; test_accessibility.py checks every mail's HTML instead.
MAIL_DOCUMENTS = {"admin-settings-preview"}


def seed(app, base: str, mailbox) -> dict:
    """Data whose every text field is as long as the app accepts."""
    origin = Origin(ConsentSource.EDITOR)
    with app.app_context(), unit_of_work():
        owner = db.session.scalar(select(Editor))
        topic = topics.create_topic("long-" + "t" * 59, LONG_WORD[:100],
                                    categories=[LONG_WORD[:100]])
        accounts.create_editor(LONG_ADDRESS, None, "editor")
        accounts.create_api_token(owner.email, "CMS " + "n" * 96, ["articles:write"])
        article, _ = articles.add_article(ArticleInput(
            title=LONG_WORD, url=LONG_URL, summary=LONG_WORD, author="A" * 200,
            categories=[LONG_WORD[:100]], body_markdown=f"{LONG_WORD}\n\n<{LONG_URL}>",
            published_at=datetime.now(UTC)), "editor")
        imported, _ = articles.add_article(ArticleInput(
            title=LONG_WORD, url=f"{base}/articles/{'s' * 200}",
            body_html=f"<p>{LONG_WORD}</p><p><a href='{LONG_URL}'>{LONG_URL}</a></p>"),
            "import")
        with unit_of_work():
            reader, _ = subscriptions.add_by_hand(LONG_ADDRESS, "N" * 200, LONG_WORD, origin)
            pending, _ = subscriptions.add_by_hand("p" + LONG_ADDRESS[1:], "P" * 200, None,
                                                   origin)
            intake.park_webhook(LONG_WORD + " " + LONG_URL, "ses")
        with unit_of_work():
            undo = AddressChange(subscriber_id=reader.id, old_email="o" + LONG_ADDRESS[1:],
                                 new_email=LONG_ADDRESS, changed_at=utcnow())
            db.session.add(undo)
        with unit_of_work():
            digest = digests.send_now(subject=LONG_WORD[:250], intro=LONG_WORD)
        ids = {"article": article.id, "subscriber": reader.id, "pending": pending.id,
               "digest": digest.id, "slug": "s" * 200,
               "unsubscribe_key": reader.unsubscribe_key, "topic": topic.id,
               "topic_slug": topic.slug, "undo_key": undo.undo_key}
        from newsletter.mail.tokens import make_confirm_token, make_keep_token

        ids["confirm_token"] = make_confirm_token(pending.id, pending.token_nonce)
        ids["keep_token"] = make_keep_token(reader.id)
        ids["active_confirm_token"] = make_confirm_token(reader.id, reader.token_nonce)
        assert imported.url.endswith(ids["slug"])
    wait_until_sent(app, ids["digest"])
    with app.app_context(), unit_of_work():
        # Something new for the compose page, after the issue went out.
        articles.add_article(ArticleInput(title=LONG_WORD + "2", url=LONG_URL + "2"), "editor")
        upload = subscriber_lists.keep_upload(
            f"email,name\n{LONG_WORD}@{LONG_URL}\n{LONG_ADDRESS}\n{LONG_ADDRESS}\n".encode())
        with unit_of_work():
            ids["import_job"] = subscriber_lists.start_import_job(upload, None, True, None).id
        run_import(ids["import_job"])  # or the worker does; both is one
    wait_for_import(app, ids["import_job"])
    (mailbox / "1700000000-1.eml").write_text(
        f"From: news@example.com\r\nTo: {LONG_ADDRESS}\r\nSubject: {LONG_WORD}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        f"--b\r\nContent-Type: text/plain\r\n\r\n{LONG_WORD} {LONG_URL}\r\n"
        f"--b\r\nContent-Type: text/html\r\n\r\n<p><a href='{LONG_URL}'>{LONG_URL}</a></p>\r\n"
        "--b--\r\n")
    ids["mail"] = "1700000000-1"
    return ids


def wait_for_import(app, job_id: int, timeout: float = 30) -> None:
    def done():
        with app.app_context():
            return subscriber_lists.import_job(job_id).status == ImportStatus.DONE

    wait_until(done, timeout, "the import check to finish", interval=0.1)


def too_wide(page, name: str, url: str | None) -> list[str]:
    """Show the page (``url``, or the one open) at each width and save a screenshot;
    the widths at which it scrolls sideways, and what axe-core finds at each."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        if url is not None:
            response = page.goto(url)
            assert response.status < 500, (name, response.status)
        screenshot(page, f"{name}-{width}")
        scroll, client = page.evaluate("[document.documentElement.scrollWidth, "
                                       "document.documentElement.clientWidth]")
        if scroll > client:
            problems.append(f"{name} at {width} px: {scroll} px wide")
        if name not in MAIL_DOCUMENTS:
            problems += axe_problems(page, f"{name} at {width} px")
    return problems


def test_no_page_is_wider_than_the_window(app, clean_state, celery_worker, database_url,
                                          redis_url, smtp_server, page, tmp_path):
    make_editor(app)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # A dev-mode app (as `dev.py run` makes it) so /dev/mail exists too.
    site = create_app(app_config(database_url, redis_url, smtp_server.port, DEBUG=True,
                                 BASE_URL=base, DEV_MAILBOX=str(tmp_path),
                                 TASK_QUEUE=app.config["TASK_QUEUE"]))  # the test's worker
    ids = seed(site, base, tmp_path)
    server = make_server("127.0.0.1", port, site, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        problems = []
        for name, path in PUBLIC_PAGES:
            problems += too_wide(page, name, base + path.format(**ids))
        # The page after the keep button (a POST's answer), while the reader is active.
        page.goto(base + f"/keep/{ids['keep_token']}")
        page.get_by_role("button", name="Yes, keep me subscribed").click()
        page.get_by_role("heading", name="You stay subscribed").wait_for()
        problems += too_wide(page, "kept", None)
        # The page after the unsubscribe button (a POST's answer).
        page.goto(base + f"/unsubscribe/{ids['unsubscribe_key']}")
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        problems += too_wide(page, "unsubscribed", None)

        log_in(page, base, "/admin/")
        page.get_by_role("heading", name="Dashboard").wait_for()
        for name, path in EDITOR_PAGES:
            problems += too_wide(page, name, base + path.format(**ids))
        assert problems == [], "\n".join(problems)
    finally:
        server.shutdown()
    with app.app_context():
        assert db.session.get(Subscriber, ids["subscriber"]).status == \
            SubscriberStatus.UNSUBSCRIBED
