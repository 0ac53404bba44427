"""An editor turns on two-factor login, then logs in with a code and with a recovery code;
with 2FA mandatory, a new editor is held on the enrolment page until enrolled."""

import time

import pyotp

from tests.factories import make_editor
from tests.helpers import PASSWORD, screenshot


def log_in(page, base: str, email: str = "editor@example.com") -> None:
    page.goto(f"{base}/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_enrol_totp_then_log_in_with_a_code_and_a_recovery_code(app, live_server, page):
    make_editor(app)
    log_in(page, live_server)
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.get_by_role("link", name="Account").click()
    assert page.locator(".qr svg").count() == 1  # drawn on the server, no script
    secret = page.locator("#totp-secret").inner_text()
    screenshot(page, "admin-2fa-enrol")
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on two-factor login").click()
    page.get_by_text("That code does not match").wait_for()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor login").click()
    codes = page.locator("#recovery-codes").inner_text().split()
    assert len(codes) == 10
    screenshot(page, "admin-2fa-recovery-codes")

    page.get_by_role("button", name="Log out").first.click()
    log_in(page, live_server)
    page.get_by_role("heading", name="Two-factor login").wait_for()
    page.get_by_label("Code").fill("123456")
    page.get_by_role("button", name="Verify").click()
    page.get_by_text("That code is wrong, expired or already used").wait_for()
    # The enrolment spent this 30-second step's code: use the next step's (accepted
    # one step either side of now).
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("heading", name="Dashboard").wait_for()

    page.get_by_role("button", name="Log out").first.click()
    log_in(page, live_server)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.get_by_role("link", name="Account").click()
    page.get_by_text("9 recovery code(s) left").wait_for()

    page.get_by_role("button", name="Log out").first.click()
    log_in(page, live_server)
    page.get_by_label("Code").fill(codes[0])  # spent
    page.get_by_role("button", name="Verify").click()
    page.get_by_text("That code is wrong, expired or already used").wait_for()


def test_mandatory_two_factor_forces_enrolment(app, live_server, page):
    make_editor(app)
    app.config["REQUIRE_TWO_FACTOR"] = True
    try:
        log_in(page, live_server)
        page.get_by_role("heading", name="Your account").wait_for()
        page.get_by_text("Two-factor login is required here").wait_for()
        page.goto(f"{live_server}/admin/subscribers")
        page.get_by_text("Set up two-factor login to continue").wait_for()
        assert page.url.endswith("/admin/account")
        screenshot(page, "admin-2fa-required")
        secret = page.locator("#totp-secret").inner_text()
        page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Turn on two-factor login").click()
        page.locator("#recovery-codes").wait_for()
        page.get_by_role("link", name="Subscribers").click()
        page.get_by_role("heading", name="Subscribers").wait_for()
    finally:
        app.config["REQUIRE_TWO_FACTOR"] = False
