"""A reader in Tokyo whose browser speaks French: the subscribe page is French and the
static script fills the time zone from the browser (no inline script: the CSP holds)."""

from tests.helpers import subscriber, wait_for_subscribe_requests


def test_the_browser_gives_its_language_and_zone(app, live_server, page_in, monkeypatch):
    monkeypatch.setitem(app.config, "LANGUAGES", ("en", "fr"))
    page = page_in(locale="fr-FR", timezone_id="Asia/Tokyo")
    page.goto(f"{live_server}/subscribe")
    page.get_by_role("heading", name="S’abonner à The Newsletter").wait_for()
    assert page.get_by_label("Langue").input_value() == "fr"
    assert page.locator("input[name=timezone]").input_value() == "Asia/Tokyo"
    page.get_by_label("Adresse e-mail").fill("tokyo@example.com")
    page.get_by_role("button", name="S’abonner").click()
    page.get_by_role("heading", name="Consultez votre boîte de réception").wait_for()
    wait_for_subscribe_requests(app)
    reader = subscriber(app, "tokyo@example.com")
    assert (reader.language, reader.timezone) == ("fr", "Asia/Tokyo")
