"""An editor logs in, imports the sample article, composes, previews, tests and sends."""

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Digest
from tests.factories import add_subscribers, make_editor
from tests.helpers import PASSWORD, SAMPLE, screenshot


def test_editor_sends_a_digest_and_watches_it_finish(app, live_server, page, mailbox):
    make_editor(app)
    add_subscribers(app, 20)
    mailbox.delay = 0.05  # slow enough to watch the progress bar move
    assert app.test_cli_runner().invoke(args=["articles", "import", str(SAMPLE)]).exit_code == 0

    page.goto(f"{live_server}/admin/")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("do not match an editor").wait_for()
    screenshot(page, "admin-login-failed")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    screenshot(page, "admin-dashboard")

    page.get_by_role("link", name="Compose it now").click()
    page.get_by_label("Subject").fill("Central Asia this week")
    page.get_by_label("Headline").fill("Five republics, one week")
    page.get_by_label("Intro").fill("One story worth your time.")
    page.get_by_role("button", name="Update preview").click()  # the no-script way
    preview = page.frame_locator("iframe.preview")
    preview.get_by_role("heading", name="Five republics, one week").wait_for()
    screenshot(page, "admin-compose")

    page.get_by_role("button", name="Send a test to editor@example.com").click()
    page.get_by_text("Test sent to editor@example.com").wait_for()
    assert mailbox.wait_for(1)[0]["Subject"] == "[Test] Central Asia this week"

    page.get_by_role("button", name="Send now to all confirmed readers").click()
    page.get_by_role("heading", name="Send ‘Central Asia this week’ to 20 readers?").wait_for()
    page.get_by_role("button", name="Yes, send to 20 readers").click()
    page.get_by_role("progressbar").wait_for()
    screenshot(page, "admin-sending")
    page.locator("#percent", has_text="100%").wait_for(timeout=60_000)
    page.locator("#status", has_text="sent").wait_for()
    screenshot(page, "admin-sent")

    digests = [m for m in mailbox.wait_for(21) if m["To"] != "editor@example.com"]
    assert len(digests) == 20
    assert {m["Subject"] for m in digests} == {"Central Asia this week"}
    with app.app_context():
        assert db.session.scalar(select(Digest.status)).value == "sent"

    page.get_by_role("link", name="Subscribers").click()
    page.get_by_role("link", name="reader3@example.com").click()
    page.get_by_role("heading", name="Consent history").wait_for()
    screenshot(page, "admin-subscriber")
    page.get_by_role("link", name="Articles").click()
    screenshot(page, "admin-articles")


def test_csv_import_with_mistakes_shows_its_report(app, live_server, page, tmp_path):
    make_editor(app)
    csv_file = tmp_path / "old-list.csv"
    csv_file.write_text("email,name\nada@example.com,Ada\nnot an address,Bad\n"
                        "ADA@example.com,Again\ngrace@example.com,Grace\n")
    page.goto(f"{live_server}/admin/login?next=/admin/subscribers/import")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Import subscribers").wait_for()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_label("Consent they gave").fill("Double opt-in on our old list")
    page.get_by_role("button", name="Check the file").click()
    page.get_by_role("heading", name="Report").wait_for()
    assert page.locator("#valid").inner_text() == "2"
    assert page.locator("#duplicates").inner_text() == "1"
    assert page.locator("#invalid").inner_text() == "1"
    assert "not an address" in page.locator("#invalid-lines").inner_text()
    assert "ADA@example.com" in page.locator("#duplicate-lines").inner_text()
    screenshot(page, "admin-import-report")
    page.get_by_role("button", name="Import 2 subscribers as confirmed").click()
    page.get_by_role("heading", name="Imported 2 subscribers").wait_for()  # the job, once done
    assert page.locator("#valid").inner_text() == "2"
    screenshot(page, "admin-subscribers")
