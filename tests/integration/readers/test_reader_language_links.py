"""An address change in the reader's language, through a real worker, SMTP server and
database: a French reader's confirmation and notice mails are French (Content-Language
fr), the confirm and undo pages their links reach are French whatever the browser asks,
and so is a used link's page; public error pages follow Accept-Language or ?lang=."""

from __future__ import annotations

import pytest
from babel.dates import format_date
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import AddressChange, Subscriber, SubscriberStatus, utcnow
from tests.helpers import csrf_token_from, link_from

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

ENGLISH_BROWSER = {"Accept-Language": "en-GB, en;q=0.8"}
FRENCH_BROWSER = {"Accept-Language": "fr-FR, fr;q=0.9"}


@pytest.fixture
def two_languages(app):
    app.config["LANGUAGES"] = ("en", "fr")


def french_reader(app) -> str:
    """An active French reader; returns the path of their preference centre."""
    with app.app_context():
        reader = Subscriber(email="marie@example.com", email_normalized="marie@example.com",
                            name="Marie", language="fr", status=SubscriberStatus.ACTIVE,
                            confirmed_at=utcnow())
        db.session.add(reader)
        db.session.commit()
        return f"/unsubscribe/{reader.unsubscribe_key}/preferences"


def text(message, kind: str = "plain") -> str:
    return message.get_body((kind,)).get_content()


def page_text(answer) -> str:
    return answer.get_data(as_text=True)


def test_a_french_readers_address_change_is_french_from_mail_to_page(app, mailbox,
                                                                     two_languages):
    browser = app.test_client()
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = ENGLISH_BROWSER["Accept-Language"]
    path = french_reader(app)
    asked = browser.post(path + "/address", data={"csrf_token": csrf_token_from(browser, path),
                                                  "email": "marie.new@example.org"},
                         follow_redirects=True)
    assert "Si cette adresse peut recevoir nos messages" in page_text(asked)

    confirmation = mailbox.wait_for(1)[0]
    assert confirmation["To"] == "marie.new@example.org"
    assert confirmation["Content-Language"] == "fr"
    assert confirmation["Subject"] == "Confirmez votre nouvelle adresse pour The Newsletter"
    assert "Le lien est valable 7 jours." in text(confirmation)
    assert "Utiliser cette adresse" in text(confirmation, "html")

    # The confirm page follows the reader, not the English browser.
    link = link_from(confirmation, "/change-address/").removeprefix("http://localhost")
    asked = browser.get(link)
    assert '<html lang="fr">' in page_text(asked)
    assert "Oui, utiliser cette adresse" in page_text(asked)
    done = browser.post(link, data={"csrf_token": csrf_token_from(browser, link)})
    assert done.status_code == 200 and "Votre adresse a été changée" in page_text(done)

    notice = mailbox.wait_for(2)[1]
    assert notice["To"] == "marie@example.com"
    assert notice["Content-Language"] == "fr"
    assert notice["Subject"] == ("Votre abonnement à The Newsletter a été transféré "
                                 "vers une autre adresse")
    with app.app_context():
        changed_at = db.session.scalar(select(AddressChange.changed_at))
    plain = text(notice)
    assert f"Le {format_date(changed_at, 'd MMMM y', locale='fr')} à " in plain
    assert "Le lien ne sert qu’une fois, pendant 7 jours." in plain
    assert "Le rétablir à cette adresse" in text(notice, "html")
    assert "Move it back" not in notice.as_string()

    undo = link_from(notice, "/undo-address/").removeprefix("http://localhost")
    offered = browser.get(undo)
    assert "Rétablir votre abonnement ?" in page_text(offered)
    back = browser.post(undo, data={"csrf_token": csrf_token_from(browser, undo)})
    assert back.status_code == 200 and "Votre abonnement est rétabli" in page_text(back)

    # A used link's page is the reader's language too, with its next step in French.
    again = browser.get(undo)
    assert again.status_code == 400
    assert '<html lang="fr">' in page_text(again)
    assert "Ce lien a déjà été utilisé" in page_text(again)
    assert "Le changement a déjà été annulé avec ce lien." in page_text(again)
    assert "M’envoyer un lien de désabonnement" in page_text(again)


def test_a_bad_link_page_follows_the_browser(client, two_languages):
    """A link we cannot read names no reader: its page is the browser's language."""
    french = client.get("/unsubscribe/not-a-real-token", headers=FRENCH_BROWSER)
    assert french.status_code == 400
    assert '<html lang="fr">' in page_text(french)
    assert "Ce lien n’est pas valide" in page_text(french)
    assert "Il a peut-être été tronqué ou modifié." in page_text(french)
    english = client.get("/unsubscribe/not-a-real-token", headers=ENGLISH_BROWSER)
    assert english.status_code == 400 and "This link is not valid" in page_text(english)
    chosen = client.get("/change-address/forged.token?lang=fr", headers=ENGLISH_BROWSER)
    assert chosen.status_code == 400 and "Ce lien n’est pas valide" in page_text(chosen)


def test_error_pages_follow_the_browser_and_the_api_stays_english(client, two_languages):
    missing = client.get("/no-such-page", headers=FRENCH_BROWSER)
    assert missing.status_code == 404
    assert "Il n’y a pas de page à cette adresse." in page_text(missing)
    assert "Erreur 404." in page_text(missing)
    api = client.get("/api/v1/no-such-endpoint", headers=FRENCH_BROWSER)
    assert api.status_code == 404
    assert api.get_json()["error"] == "There is no page at this address."


def test_form_errors_are_in_the_pages_language(app, client, two_languages):
    path = french_reader(app)
    same = client.post(path + "/address", data={"csrf_token": csrf_token_from(client, path),
                                                "email": "marie@example.com"},
                       headers=ENGLISH_BROWSER)
    assert same.status_code == 400
    assert "C’est déjà l’adresse à laquelle nous écrivons." in page_text(same)

    form = "/unsubscribe-link"
    empty = client.post(form, data={"csrf_token": csrf_token_from(client, form), "email": ""},
                        headers=FRENCH_BROWSER)
    assert empty.status_code == 400 and "Saisissez une adresse électronique." in page_text(empty)
    english = client.post(form, data={"csrf_token": csrf_token_from(client, form), "email": ""},
                          headers=ENGLISH_BROWSER)
    assert english.status_code == 400 and "Enter an email address." in page_text(english)


def test_an_error_with_a_value_keeps_it_in_the_translation(client, two_languages):
    form = "/unsubscribe-link"
    too_long = "a" * 250 + "@example.com"
    answer = client.post(form, data={"csrf_token": csrf_token_from(client, form),
                                     "email": too_long}, headers=FRENCH_BROWSER)
    assert answer.status_code == 400
    assert "Une adresse électronique compte au plus 254 caractères." in page_text(answer)
    malformed = client.post(form, data={"csrf_token": csrf_token_from(client, form),
                                        "email": "not an address"}, headers=FRENCH_BROWSER)
    assert "Cette adresse électronique n’est pas valide : " in page_text(malformed)


def test_the_archive_pages_follow_lang_and_the_browser(client, two_languages):
    archive = page_text(client.get("/archive/?lang=fr", headers=ENGLISH_BROWSER))
    assert '<html lang="fr">' in archive
    assert "Aucun numéro n’est encore paru." in archive
    assert ">Abonnez-vous</a> pour recevoir le prochain par courriel" in archive
    by_topic = page_text(client.get("/archive/topics/", headers=FRENCH_BROWSER))
    assert "Anciens numéros par thème" in by_topic and "Il n’y a aucun thème." in by_topic
    english = page_text(client.get("/archive/", headers=ENGLISH_BROWSER))
    assert "No issue has gone out yet." in english


def test_the_unsubscribe_link_mail_is_in_the_readers_language(app, client, mailbox,
                                                               two_languages):
    french_reader(app)
    form = "/unsubscribe-link"
    sent = client.post(form, data={"csrf_token": csrf_token_from(client, form),
                                   "email": "marie@example.com"}, headers=ENGLISH_BROWSER)
    assert sent.status_code == 302
    mail = mailbox.wait_for(1)[0]
    assert mail["Content-Language"] == "fr"
    assert mail["Subject"] == "Votre lien de désabonnement de The Newsletter"
    assert "Si vous souhaitez rester abonné, ignorez ce message" in text(mail)
