"""The last reader-facing errors in the page's language: an unknown language posted to
the subscribe form, an unknown time zone or language posted to the preference centre,
and the address checker's reason. The API keeps its English words (its clients' code
reads them), the validator's own reason among them."""

from __future__ import annotations

from html import unescape

import pytest
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus, utcnow
from tests.helpers import csrf_token_from

pytestmark = pytest.mark.usefixtures("clean_state")

FRENCH_BROWSER = {"Accept-Language": "fr-FR, fr;q=0.9"}
ENGLISH_BROWSER = {"Accept-Language": "en"}


@pytest.fixture(autouse=True)
def two_languages(app):
    app.config["LANGUAGES"] = ("en", "fr")


def text(answer) -> str:
    return unescape(answer.get_data(as_text=True))


def subscribe(client, headers, **fields):
    form = "/subscribe"
    return client.post(form, data={"csrf_token": csrf_token_from(client, form), **fields},
                       headers=headers)


def test_an_unknown_language_on_the_subscribe_form_is_refused_in_the_pages_language(
        app, client):
    french = subscribe(client, FRENCH_BROWSER, email="marie@example.com", language="de")
    assert french.status_code == 400
    assert "Langue inconnue 'de' : choisissez parmi en, fr." in text(french)
    english = subscribe(client, ENGLISH_BROWSER, email="ada@example.com", language="de")
    assert english.status_code == 400
    assert "Unknown language 'de': choose one of en, fr." in text(english)
    with app.app_context():
        assert db.session.scalar(select(Subscriber.id)) is None


@pytest.mark.parametrize(("address", "french", "english"), [
    ("bad@", "ce qui suit le @ n’est pas un domaine comme exemple.fr.",
     "the part after the @ sign is not a domain such as example.com."),
    ("not-an-address", "il lui faut un @, comme dans nom@exemple.fr.",
     "it needs an @ sign, as in name@example.com."),
    ("@example.com", "il doit y avoir quelque chose avant le @.",
     "there must be something before the @ sign."),
    ("a..b@example.com", "elle contient des caractères ou des points",
     "it holds characters or dots"),
])
def test_the_address_checkers_reason_is_in_the_pages_language(client, address, french,
                                                              english):
    page = text(subscribe(client, FRENCH_BROWSER, email=address))
    assert "Cette adresse électronique n’est pas valide : " + french in page
    assert "@-sign" not in page  # none of the validator's English
    page = text(subscribe(client, ENGLISH_BROWSER, email=address))
    assert "That email address is not valid: " + english in page


def test_the_api_keeps_the_validators_own_words(client):
    answer = client.post("/api/v1/subscriptions", json={"email": "bad@"},
                         headers=FRENCH_BROWSER)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == (
        "That email address is not valid: There must be something after the @-sign.")
    answer = client.post("/api/v1/subscriptions",
                         json={"email": "a@example.com", "timezone": "Mars/Olympus"})
    assert answer.status_code == 400
    assert "Unknown time zone 'Mars/Olympus'" in answer.get_json()["error"]


def test_the_preference_centre_refuses_an_unknown_zone_or_language_in_french(app, client):
    with app.app_context():
        reader = Subscriber(email="marie@example.com", email_normalized="marie@example.com",
                            language="fr", timezone="Europe/Paris",
                            status=SubscriberStatus.ACTIVE, confirmed_at=utcnow())
        db.session.add(reader)
        db.session.commit()
        path = f"/unsubscribe/{reader.unsubscribe_key}/preferences"
    for fields, says in (
            ({"timezone": "Mars/Olympus", "language": "fr"},
             "Fuseau horaire inconnu 'Mars/Olympus' : indiquez un nom IANA comme "
             "Europe/Paris."),
            ({"timezone": "Asia/Tokyo", "language": "de"},
             "Langue inconnue 'de' : choisissez parmi en, fr.")):
        answer = client.post(path + "/locale", headers=ENGLISH_BROWSER,
                             data={"csrf_token": csrf_token_from(client, path), **fields})
        assert answer.status_code == 400
        assert says in text(answer)
    with app.app_context():  # nothing changed
        assert db.session.execute(select(Subscriber.timezone, Subscriber.language)).one() == (
            "Europe/Paris", "fr")
