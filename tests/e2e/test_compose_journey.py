"""Issue 9 in a browser: what the editor types is what is tested, confirmed and sent;
a reader not reached shows up; a time typed in Berlin is the right instant."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Delivery, Digest
from tests.factories import add_article, add_subscribers, make_editor
from tests.helpers import log_in, screenshot


def test_typed_words_reach_the_test_and_the_confirmed_send(app, live_server, page, mailbox):
    make_editor(app)
    add_subscribers(app, 4)
    add_article(app)
    log_in(page, live_server, "/admin/digests")
    page.get_by_label("Subject").fill("Central Asia this week")
    page.get_by_label("Headline").fill("Five republics, one week")
    page.get_by_label("Intro").fill("One story worth your time.")
    # No "Update preview": the test goes out with what is in the fields.
    page.get_by_role("button", name="Send a test to editor@example.com").click()
    page.get_by_text("Test sent to editor@example.com").wait_for()
    [test_mail] = mailbox.wait_for(1)
    assert test_mail["Subject"] == "[Test] Central Asia this week"
    html = test_mail.get_body(("html",)).get_content()
    assert ">Five republics, one week</h1>" in html and "One story worth your time." in html
    # The form came back as typed, and the preview shows it.
    assert page.get_by_label("Subject").input_value() == "Central Asia this week"
    assert page.get_by_label("Intro").input_value() == "One story worth your time."
    preview = page.frame_locator("iframe.preview")
    preview.get_by_role("heading", name="Five republics, one week").wait_for()

    # The preview follows typing, with no click.
    page.get_by_label("Headline").fill("Six stories, one week")
    preview.get_by_role("heading", name="Six stories, one week").wait_for()
    page.locator("#preview-text", has_text="Six stories, one week").wait_for()
    screenshot(page, "compose-live-preview")

    page.get_by_role("button", name="Send now to all confirmed readers").click()
    page.get_by_role("heading", name="Send ‘Central Asia this week’ to 4 readers?").wait_for()
    screenshot(page, "compose-confirm-send")
    page.get_by_role("button", name="Yes, send to 4 readers").click()
    page.locator("#status", has_text="sent").wait_for(timeout=60_000)
    digests_received = mailbox.wait_for(5)[1:]  # after the test mail
    assert sorted(m["To"].addresses[0].addr_spec for m in digests_received) == [
        f"reader{n}@example.com" for n in range(4)]
    assert {m["Subject"] for m in digests_received} == {"Central Asia this week"}
    with app.app_context():
        assert db.session.scalar(select(Digest.recipients)) == 4


def test_a_rejected_reader_shows_on_the_report_and_their_page(app, live_server, page,
                                                              mailbox):
    mailbox.rejected_recipients = {"reader1@example.com"}  # 550 5.1.1 at RCPT
    make_editor(app)
    add_subscribers(app, 3)
    add_article(app)
    log_in(page, live_server, "/admin/digests")
    page.get_by_label("Subject").fill("One will bounce")
    page.get_by_role("button", name="Send now to all confirmed readers").click()
    page.get_by_role("button", name="Yes, send to 3 readers").click()
    page.locator("#status", has_text="sent").wait_for(timeout=60_000)
    page.reload()  # the readers-not-reached list is drawn by the server
    not_reached = page.locator("#not-reached")
    not_reached.get_by_text("550 5.1.1 No such user here").wait_for()
    assert not_reached.get_by_role("link").all_inner_texts() == ["reader1@example.com"]
    screenshot(page, "report-not-reached")
    not_reached.get_by_role("link", name="reader1@example.com").click()
    deliveries = page.locator("#deliveries")
    deliveries.get_by_text("550 5.1.1 No such user here").wait_for()
    assert deliveries.get_by_text("failed").count() == 1
    screenshot(page, "subscriber-failed-delivery")
    page.get_by_role("link", name="Dashboard").click()
    page.locator("#failing").get_by_role("link", name="One will bounce").wait_for()
    screenshot(page, "dashboard-failing-issues")


def test_scheduling_in_berlin_across_the_clock_change(app, live_server, page, monkeypatch):
    monkeypatch.setitem(app.config, "DIGEST_SCHEDULE", "mon 08:00 Europe/Berlin")
    make_editor(app)
    add_subscribers(app, 2)
    add_article(app)
    log_in(page, live_server, "/admin/digests")
    page.locator("#zone", has_text="Europe/Berlin").wait_for()
    page.get_by_label("Subject").fill("Spring issue")
    # 02:30 on 28 Mar 2027 does not exist in Berlin (02:00 -> 03:00).
    page.get_by_label("Date").fill("2027-03-28")
    page.get_by_label("Time").fill("02:30")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("28 Mar 2027 02:30 does not exist in Europe/Berlin").wait_for()
    assert page.get_by_label("Subject").input_value() == "Spring issue"
    screenshot(page, "schedule-skipped-hour")

    # The day after the change: summer time, UTC+2 (today is winter time, UTC+1).
    page.get_by_label("Date").fill("2027-03-29")
    page.get_by_label("Time").fill("10:00")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_role("heading", name="Send ‘Spring issue’ to 2 readers?").wait_for()
    page.get_by_text("29 Mar 2027 10:00 Europe/Berlin").wait_for()
    screenshot(page, "schedule-confirm")
    page.get_by_role("button", name="Yes, schedule it").click()
    assert page.locator("#send-at").inner_text() == "29 Mar 2027 10:00 Europe/Berlin"
    with app.app_context():
        assert db.session.scalar(select(Digest.send_at)) == datetime(2027, 3, 29, 8, tzinfo=UTC)

    # Edited while scheduled: 02:30 on 31 Oct 2027 happens twice; the first pass is kept.
    page.get_by_text("Edit the subject, headline, intro or time").click()
    page.get_by_label("Headline").fill("Clocks go back")
    page.get_by_label("Date").fill("2027-10-31")
    page.get_by_label("Time").fill("02:30")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved: it goes out 31 Oct 2027 02:30 Europe/Berlin").wait_for()
    assert page.locator("#send-at").inner_text() == "31 Oct 2027 02:30 Europe/Berlin"
    screenshot(page, "schedule-edited")
    with app.app_context():
        digest = db.session.scalar(select(Digest))
        assert digest.send_at == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
        assert digest.headline == "Clocks go back"
        assert db.session.scalar(select(Delivery.id)) is None  # nothing sent meanwhile
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_text("31 Oct 2027 02:30 Europe/Berlin").wait_for()
