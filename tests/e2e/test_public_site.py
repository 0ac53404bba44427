"""A reader's first day in a real browser: subscribe again from the unsubscribe page,
and find their way from the confirmation to the archive and its issues."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Digest, DigestStatus, Subscriber, SubscriberStatus
from tests.factories import make_editor
from tests.helpers import PASSWORD, link_from, screenshot, status_of


def subscribe_and_confirm(page, live_server, mailbox, email):
    page.goto(f"{live_server}/subscribe")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(link_from(mailbox.wait_for(1)[0], "/confirm/"))
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_role("heading", name="You are subscribed").wait_for()


def test_reader_subscribes_again_from_the_unsubscribe_page(app, live_server, page, mailbox):
    make_editor(app)
    subscribe_and_confirm(page, live_server, mailbox, "back@example.com")
    welcome = mailbox.wait_for(2)[1]
    page.goto(link_from(welcome, "/unsubscribe/"))
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert status_of(app, "back@example.com") == SubscriberStatus.UNSUBSCRIBED

    page.get_by_role("button", name="Subscribe again").click()
    page.get_by_role("heading", name="You are subscribed again").wait_for()
    screenshot(page, "resubscribed")
    assert status_of(app, "back@example.com") == SubscriberStatus.ACTIVE

    # The consent history an editor sees records it, with where it came from.
    with app.app_context():
        reader_id = db.session.scalar(select(Subscriber.id).where(
            Subscriber.email_normalized == "back@example.com"))
    page.goto(f"{live_server}/admin/subscribers/{reader_id}")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Consent history").wait_for()
    page.get_by_text("resubscribed from unsubscribe page").wait_for()
    screenshot(page, "resubscribed-consent-history")
    rows = page.locator("table tr", has_text="confirmed").all_inner_texts()
    assert len(rows) == 2 and "link" in rows[1]


def add_issues(app, subjects):
    start = datetime(2026, 3, 6, 7, 30, tzinfo=UTC)
    with app.app_context():
        for week, subject in enumerate(subjects):
            db.session.add(Digest(subject=subject, headline=f"{subject}: the week",
                                  status=DigestStatus.SENT,
                                  started_at=start + timedelta(weeks=week),
                                  finished_at=start + timedelta(weeks=week, minutes=5)))
        db.session.add(Digest(subject="Not out yet", status=DigestStatus.SCHEDULED,
                              send_at=start + timedelta(weeks=10)))
        db.session.commit()


def test_reader_goes_from_the_confirmation_to_the_archive_and_its_issues(app, live_server,
                                                                          page, mailbox):
    add_issues(app, ["Week one in Geneva", "Week two in Astana", "Week three in Lima"])
    subscribe_and_confirm(page, live_server, mailbox, "new@example.com")
    screenshot(page, "confirmed-next-steps")

    page.get_by_role("link", name="Read the latest issue").click()
    page.get_by_role("heading", name="Week three in Lima", exact=True).wait_for()
    page.get_by_text("20 March 2026").wait_for()
    # The mail inline (no frame): its H1 is the issue's headline, the page's the subject.
    page.locator(".issue-body").get_by_role(
        "heading", name="Week three in Lima: the week").wait_for()
    assert page.locator("iframe").count() == 0
    screenshot(page, "archive-issue")
    assert page.get_by_role("link", name="Next:").count() == 0

    page.get_by_role("link", name="Previous: Week two in Astana").click()
    page.get_by_role("heading", name="Week two in Astana", exact=True).wait_for()
    page.get_by_role("link", name="Previous: Week one in Geneva").click()
    page.get_by_role("heading", name="Week one in Geneva", exact=True).wait_for()
    assert page.get_by_role("link", name="Previous:").count() == 0
    page.get_by_role("link", name="Next: Week two in Astana").click()
    page.get_by_role("heading", name="Week two in Astana", exact=True).wait_for()
    page.go_back()
    page.get_by_role("heading", name="Week one in Geneva", exact=True).wait_for()

    page.get_by_role("link", name="← All issues").click()
    page.get_by_role("heading", name="Past issues").wait_for()
    screenshot(page, "archive-index")
    issues = page.locator("ol.issues li a").all_inner_texts()
    assert issues == ["Week three in Lima", "Week two in Astana", "Week one in Geneva"]

    # The header leads everywhere: the site name to the archive, and to the form.
    page.get_by_role("navigation", name="Site").get_by_role("link", name="Subscribe").click()
    page.get_by_role("heading", name="Subscribe to The Newsletter").wait_for()
    page.locator("header.site a.brand").click()
    page.get_by_role("heading", name="Past issues").wait_for()
    page.goto(f"{live_server}/no/such/page")
    page.get_by_role("link", name="Browse past issues").click()
    page.get_by_role("heading", name="Past issues").wait_for()


def test_owner_brands_the_site_and_previews_the_mails(app, live_server, page):
    make_editor(app)
    page.goto(f"{live_server}/admin/login?next=/admin/settings/")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Settings").wait_for()
    page.get_by_label("Accent colour").fill("#AA3300")
    page.get_by_label("Site description").fill("Foreign affairs, briefly.")
    page.get_by_label("Confirmation mail").fill("One click and {site_name} is yours.")
    page.get_by_role("button", name="Preview without saving").click()
    preview = page.frame_locator("iframe[title='Confirmation mail preview']")
    preview.get_by_text("One click and The Newsletter is yours.").wait_for()
    button = preview.get_by_role("link", name="Confirm my subscription")
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(170, 51, 0)"
    screenshot(page, "admin-settings-preview")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Settings saved").wait_for()

    page.goto(f"{live_server}/subscribe")
    page.get_by_text("Foreign affairs, briefly.").wait_for()
    subscribe = page.get_by_role("button", name="Subscribe")
    assert subscribe.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(170, 51, 0)"
    screenshot(page, "subscribe-branded")


def test_bad_unsubscribe_link_sends_a_fresh_one(app, live_server, page, mailbox):
    with app.app_context():
        reader = Subscriber(email="stuck@example.com", email_normalized="stuck@example.com",
                            status=SubscriberStatus.ACTIVE)
        db.session.add(reader)
        db.session.commit()
    page.goto(f"{live_server}/unsubscribe/cut-off-lin")
    page.get_by_role("heading", name="This link is not valid").wait_for()
    screenshot(page, "unsubscribe-bad-link")
    page.get_by_label("Email address").fill("stuck@example.com")
    page.get_by_role("button", name="Send me an unsubscribe link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(link_from(mailbox.wait_for(1)[0], "/unsubscribe/"))
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert status_of(app, "stuck@example.com") == SubscriberStatus.UNSUBSCRIBED
