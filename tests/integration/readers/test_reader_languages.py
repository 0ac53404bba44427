"""Every reader in their own language, through a real worker, SMTP server and database:
a French and an English reader each get the confirmation, welcome and digest in their
language (Content-Language, the French footer and unsubscribe text); the pages their
links reach follow it; a segment of French readers gets only the French reader; public
pages follow Accept-Language or ?lang=."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from babel.dates import format_date
from sqlalchemy import select

from newsletter.content import articles
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import ArticleSource, Digest
from newsletter.readers import segments
from tests.helpers import csrf_token_from, link_from, wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

RTL_NAME = "مريم الحسن"  # a right-to-left name in a French mail


@pytest.fixture
def two_languages(app):
    app.config["LANGUAGES"] = ("en", "fr")


def body(message, kind: str) -> str:
    return message.get_body((kind,)).get_content()


def by_reader(messages) -> dict:
    return {message["To"].addresses[0].username: message for message in messages}


def publish(title: str, language: str | None) -> None:
    articles.add_article(ArticleInput(
        title=title, url=f"https://news.example.com/{title.replace(' ', '-')}",
        summary="Something happened.", categories=["World"], language=language,
        published_at=datetime.now(UTC)), ArticleSource.API)


def test_a_french_and_an_english_reader_each_get_their_language(app, client, mailbox,
                                                                 two_languages):
    for email, name, language in (("marie@example.com", RTL_NAME, "fr"),
                                  ("ada@example.com", "Ada", "en")):
        answer = client.post("/api/v1/subscriptions",
                             json={"email": email, "name": name, "language": language})
        assert answer.status_code == 202
    confirmations = by_reader(mailbox.wait_for(2))
    french, english = confirmations["marie"], confirmations["ada"]
    assert french["Content-Language"] == "fr" and english["Content-Language"] == "en"
    assert french["Subject"] == "Confirmez votre abonnement à The Newsletter"
    assert english["Subject"] == "Confirm your subscription to The Newsletter"
    assert "Le lien est valable 7 jours." in body(french, "plain")
    assert "Confirmer mon abonnement" in body(french, "html")
    assert '<html lang="fr">' in body(french, "html")
    assert "Vous recevez ce message parce que cette adresse" in body(french, "html")

    # The pages the links reach follow the reader's language, whatever the browser says.
    for reader, yes in (("marie", "Oui, abonnez-moi"), ("ada", "Yes, subscribe me")):
        path = link_from(confirmations[reader], "/confirm/").removeprefix("http://localhost")
        page = client.get(path, headers={"Accept-Language": "de, en;q=0.5"})
        assert yes in page.get_data(as_text=True)
        token = csrf_token_from(client, path)
        client.post(path, data={"csrf_token": token})
    welcomes = by_reader(mailbox.wait_for(4)[2:])
    french = welcomes["marie"]
    assert french["Subject"] == "Bienvenue à The Newsletter"
    assert french["Content-Language"] == "fr"
    # The Arabic name is isolated, so it cannot reorder the French sentence around it.
    assert f"Bonjour <bdi>{RTL_NAME}</bdi>, vous êtes abonné." in body(french, "html")
    assert f"Bonjour \u2068{RTL_NAME}\u2069," in body(french, "plain")
    assert "Se désabonner :" in body(french, "plain")
    assert "Gérer vos rubriques" in body(french, "html")
    assert welcomes["ada"]["Subject"] == "Welcome to The Newsletter"
    preferences = link_from(french, "/unsubscribe/").removeprefix("http://localhost")
    preferences = preferences.removesuffix("/preferences") + "/preferences"
    assert "Vos préférences" in client.get(preferences).get_data(as_text=True)

    # The digest: each copy in its reader's language, with the articles of that language
    # and the language-less ones; per-language subject and intro from the editor.
    with app.app_context(), unit_of_work():
        publish("Talks resume", None)
        publish("Les pourparlers reprennent", "fr")
        publish("Markets close higher", "en")
        digest = digests.send_now(subject="This week", intro="Hello readers.",
                                  translations={"fr": {"subject": "Cette semaine",
                                                       "intro": "Bonjour à tous."}})
        digest_id = digest.id
    wait_until_sent(app, digest_id)
    issues = by_reader(mailbox.wait_for(6)[4:])
    french, english = issues["marie"], issues["ada"]
    assert (french["Subject"], french["Content-Language"]) == ("Cette semaine", "fr")
    assert (english["Subject"], english["Content-Language"]) == ("This week", "en")
    french_text, english_text = body(french, "plain"), body(english, "plain")
    assert "Bonjour à tous." in french_text and "Hello readers." in english_text
    assert "Les pourparlers reprennent" in french_text and "Markets" not in french_text
    assert "Markets close higher" in english_text and "pourparlers" not in english_text
    assert "Talks resume" in french_text and "Talks resume" in english_text
    assert "Vous recevez The Newsletter parce que vous vous y êtes abonné." in french_text
    assert "Se désabonner :" in french_text and "Lire l’article →" in body(french, "html")
    assert "Unsubscribe:" in english_text and "Se désabonner" not in english_text
    # The default headline's date in each language.
    with app.app_context():
        day = db.session.get(Digest, digest_id).started_at.date()
    assert f"The Newsletter, {format_date(day, 'd MMMM y', locale='fr')}" in french_text
    assert f"The Newsletter, {format_date(day, 'd MMMM y', locale='en')}" in english_text

    # A segment of French readers: only Marie.
    with app.app_context(), unit_of_work():
        publish("Nouvelles du jour", "fr")
        segment = segments.create("Francophones", [{"field": "language", "op": "is",
                                                    "value": "fr"}])
        digest = digests.send_now(segment=segment)
        assert digest.recipients == 1
        digest_id = digest.id
    wait_until_sent(app, digest_id)
    [last] = mailbox.wait_for(7)[6:]
    assert last["To"].addresses[0].username == "marie" and last["Content-Language"] == "fr"
    with app.app_context():
        assert db.session.scalar(select(Digest.segment_id).where(Digest.id == digest_id))


def test_public_pages_follow_accept_language_or_the_lang_parameter(app, client,
                                                                   two_languages):
    def page(path: str, **headers) -> str:
        return client.get(path, headers=headers).get_data(as_text=True)

    assert "S’abonner à The Newsletter" in page("/subscribe", **{"Accept-Language": "fr-FR,fr"})
    assert '<html lang="fr">' in page("/subscribe", **{"Accept-Language": "fr"})
    assert "Subscribe to The Newsletter" in page("/subscribe?lang=en",
                                                 **{"Accept-Language": "fr"})
    assert "S’abonner à" in page("/subscribe?lang=fr")
    # An unknown or hostile value is ignored, never echoed.
    hostile = page('/subscribe?lang="><script>', **{"Accept-Language": "zz"})
    assert "Subscribe to The Newsletter" in hostile and "<script>" not in hostile
    # Cacheable pages say they vary with the language; the archive's mail follows it.
    with app.app_context(), unit_of_work():
        publish("Talks resume", None)
        digest_id = digests.send_now().id
    issue = client.get(f"/archive/{digest_id}/mail", headers={"Accept-Language": "fr"})
    assert "Accept-Language" in issue.headers["Vary"]
    assert "S’abonner à The Newsletter" in issue.get_data(as_text=True)
    # The form offers the languages, the browser's chosen.
    form = page("/subscribe", **{"Accept-Language": "fr"})
    assert '<option value="fr" selected>français</option>' in form


def test_a_language_not_offered_is_refused_at_subscribe(app, client, two_languages):
    answer = client.post("/api/v1/subscriptions",
                         json={"email": "x@example.com", "language": "de"})
    assert answer.status_code == 400
    assert answer.json["error"] == "Unknown language 'de': choose one of en, fr."
