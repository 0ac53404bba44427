"""Rotating SECRET_KEY as the runbook says loses nothing: a bounce of an issue sent
before the rotation still marks its reader, and confirmation links and open subscribe
forms still work. Confirmation links carry no row id."""

from __future__ import annotations

import base64
import json
import smtplib
import subprocess
import sys

from sqlalchemy import select

from newsletter.devstack import free_port, wait_for_port
from newsletter.extensions import db
from newsletter.mail import tokens
from newsletter.models import Subscriber, SubscriberStatus
from tests.factories import add_article, send_now
from tests.helpers import (
    ROOT,
    bounce_mail,
    csrf_token_from,
    subprocess_env,
    wait_until,
    wait_until_sent,
)

OLD_KEY = "test-secret-key-of-at-least-32-bytes"  # what tests.helpers.app_config sets
NEW_KEY = "a-new-secret-key-after-the-rotation-0123456789"


def test_a_bounce_of_an_issue_sent_before_a_rotation_marks_the_reader(
        app, client, celery_worker, mailbox):
    assert app.config["SECRET_KEY"] == OLD_KEY
    with app.app_context():
        db.session.add(Subscriber(email="gone@example.org", email_normalized="gone@example.org",
                                  status=SubscriberStatus.ACTIVE))
        db.session.commit()
    add_article(app)
    wait_until_sent(app, send_now(app))
    message = mailbox.wait_for(1)[0]
    envelope_from = mailbox.envelopes[0][0]
    assert envelope_from.startswith("bounces+")

    # Every process restarted with the new key, the old one among the fallbacks; no
    # BOUNCE_KEY: the VERP key is derived from SECRET_KEY.
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "newsletter", "bounces", "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        env=subprocess_env(app, SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=OLD_KEY),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=60)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            refused = smtp.sendmail("", [envelope_from], bounce_mail(
                "postfix_hard", verp=envelope_from, recipient="gone@example.org",
                message_id=message["Message-ID"]))
        assert refused == {}
    finally:
        receiver.terminate()
        receiver.wait(timeout=15)

    def status():
        with app.app_context():
            found = db.session.scalar(select(Subscriber.status))
            db.session.remove()
        return found

    wait_until(lambda: status() == SubscriberStatus.BOUNCED, 30, "the reader to be bounced")


def test_confirm_links_and_open_forms_outlive_a_rotation(app, client):
    with app.app_context():
        reader = Subscriber(email="new@example.org", email_normalized="new@example.org")
        db.session.add(reader)
        db.session.commit()
        link = tokens.make_confirm_token(reader.id, reader.token_nonce)
        reader_id = reader.id
    form_token = csrf_token_from(client, "/subscribe")

    # The link shows neither the reader's id nor anything else readable but the nonce.
    payload = json.loads(base64.urlsafe_b64decode(link.split(".")[0] + "=="))
    assert reader_id not in payload and str(reader_id) not in payload[0]

    app.config.update(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY])
    answer = client.post("/subscribe", data={"email": "other@example.org",
                                             "csrf_token": form_token})
    assert answer.status_code == 302, answer.get_data(as_text=True)  # not "form expired"
    assert client.get(f"/confirm/{link}").status_code == 200
    confirmed = client.post(f"/confirm/{link}",
                            data={"csrf_token": csrf_token_from(client, f"/confirm/{link}")})
    assert "You are subscribed" in confirmed.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Subscriber, reader_id).status == SubscriberStatus.ACTIVE

    app.config["SECRET_KEY_FALLBACKS"] = []  # dropped: the old links end
    assert client.get(f"/confirm/{link}").status_code == 400
