"""A sequence step in each reader's language, on the real stack (Celery worker, Redis,
an SMTP server, the ledger): the editor's words for the language, else the default's,
always with the language's footer and unsubscribe text and ``Content-Language``. The
step is rendered once per language among its readers, not once per reader."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Delivery, DigestVariant, Subscriber, utcnow
from newsletter.sequences import runner, steps
from tests.factories import add_subscribers
from tests.helpers import wait_until

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

ENGLISH = "Welcome aboard\n\nThanks for confirming. [Our guide](https://news.example.com/guide)."
FRENCH = "Bienvenue à bord\n\nMerci d’avoir confirmé. [Notre guide](https://news.example.com/guide-fr)."


def text_of(message, kind: str) -> str:
    return message.get_body((kind,)).get_content()


def test_each_reader_gets_the_step_in_their_language(app, mailbox):
    app.config["LANGUAGES"] = ("en", "fr")
    with app.app_context(), unit_of_work():
        steps.create_sequence("welcome")
        first = steps.add_step("welcome", "0s", "Welcome", ENGLISH,
                               {"fr": {"subject": "Bienvenue", "body": FRENCH}})
        # No French words for step 2: French readers get the English words, French chrome.
        second = steps.add_step("welcome", "1h", "Our best pieces", "Read *these*.")
        first_issue, second_issue = first.digest_id, second.digest_id
    add_subscribers(app, 2, prefix="marie")
    add_subscribers(app, 1, prefix="ada")
    entered = utcnow()
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).values(confirmed_at=entered))
        db.session.execute(update(Subscriber).where(Subscriber.email.like("marie%"))
                           .values(language="fr"))

    def run_at(moment):
        with app.app_context(), unit_of_work():
            [sequence_id] = runner.sequence_ids()
            return runner.run(sequence_id, now=moment)

    assert run_at(entered)["queued"] == 3
    mails = {m["To"].addresses[0].username: m for m in mailbox.wait_for(3)}
    french, english = mails["marie0"], mails["ada0"]
    assert (french["Subject"], french["Content-Language"]) == ("Bienvenue", "fr")
    assert (english["Subject"], english["Content-Language"]) == ("Welcome", "en")
    assert "Merci d’avoir confirmé." in text_of(french, "html")
    assert "Thanks for confirming." in text_of(english, "html")
    assert '<html lang="fr">' in text_of(french, "html")
    # The French footer and unsubscribe text; the English ones for the English reader.
    assert "Vous recevez The Newsletter parce que vous vous y êtes abonné." in text_of(
        french, "plain")
    assert "Se désabonner :" in text_of(french, "plain")
    assert "Se désabonner</a>" in text_of(french, "html")
    assert "Unsubscribe:" in text_of(english, "plain")
    assert "Se désabonner" not in text_of(english, "plain")
    # The French body's own link is tracked like the English one.
    assert 'href="https://news.example.com/guide-fr"' not in text_of(french, "html")
    assert 'href="http://localhost/r/' in text_of(french, "html")
    assert mails["marie1"]["Subject"] == "Bienvenue"

    with app.app_context():
        # One copy per language among the readers, not one per reader.
        assert sorted(db.session.scalars(select(DigestVariant.language).where(
            DigestVariant.digest_id == first_issue))) == ["en", "fr"]
        assert db.session.scalar(select(func.count(func.distinct(Delivery.variant_id))).where(
            Delivery.digest_id == first_issue)) == 2

    def step_one_final():
        with app.app_context():
            return db.session.scalar(select(func.count()).where(
                Delivery.digest_id == first_issue, Delivery.status == "sent")) == 3
    assert wait_until(step_one_final)
    run_at(entered)  # advance past step 1
    assert run_at(entered + timedelta(hours=1))["queued"] == 3
    later = {m["To"].addresses[0].username: m for m in mailbox.wait_for(6)[3:]}
    assert later["marie0"]["Subject"] == "Our best pieces"  # the default's words ...
    assert later["marie0"]["Content-Language"] == "fr"  # ... in French chrome
    assert "Se désabonner :" in text_of(later["marie0"], "plain")
    assert "<em>these</em>" in text_of(later["marie0"], "html")
    assert later["ada0"]["Content-Language"] == "en"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DigestVariant).where(
            DigestVariant.digest_id == second_issue)) == 2
