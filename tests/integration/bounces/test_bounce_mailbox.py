"""The bounce mailbox through a real Dovecot (Debian's dovecot-imapd) over verified TLS."""

from __future__ import annotations

import imaplib
import os
import ssl

import pytest
from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import BounceEvent, BounceKind, Subscriber, SubscriberStatus
from tests import dovecot
from tests.factories import sent_issue
from tests.helpers import READER, bounce_mail, run, subprocess_env

if not dovecot.available():
    if os.environ.get("CI"):
        raise RuntimeError("dovecot-imapd is not installed (.ci/run installs it)")
    pytest.skip("needs Debian's dovecot-imapd and openssl", allow_module_level=True)


@pytest.fixture(scope="module")
def imap_server():
    server, process = dovecot.start()
    yield server
    dovecot.stop(server, process)


def imap(server) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context(cafile=str(server.cert))
    connection = imaplib.IMAP4_SSL("localhost", server.port, ssl_context=context)
    connection.login(server.user, server.password)
    return connection


def folder_count(server, folder: str) -> int:
    connection = imap(server)
    try:
        status, data = connection.select(f'"{folder}"', readonly=True)
        return int(data[0]) if status == "OK" else 0
    finally:
        connection.logout()


def empty(server) -> None:
    connection = imap(server)
    for folder in ("INBOX", "Processed"):
        status, data = connection.select(f'"{folder}"')
        if status == "OK" and int(data[0]):
            connection.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
            connection.expunge()
    connection.logout()


def poll(app, server, **settings):
    settings = {"BOUNCE_IMAP_URL": server.url(), "BOUNCE_IMAP_CA_FILE": str(server.cert),
                **settings}
    env = subprocess_env(app, **settings)
    return run(".venv/bin/flask", "--app", "newsletter", "bounces", "poll", env=env)


def test_poll_records_and_moves_after_commit(app, clean_state, imap_server):
    empty(imap_server)
    digest_id, (hard, soft, complainer) = sent_issue(
        app, [READER, "soft@example.net", "complainer@example.org"])
    from newsletter.mail import verp
    with app.app_context():
        def address(subscriber_id):
            return verp.address_for(verp.DeliveryRef(digest_id=digest_id,
                                                     subscriber_id=subscriber_id))
        mails = [bounce_mail("gmail_hard", verp=address(hard), recipient=READER),
                 bounce_mail("postfix_soft_delayed", verp=address(soft),
                             recipient="soft@example.net"),
                 bounce_mail("arf_complaint", verp=address(complainer),
                             recipient="complainer@example.org"),
                 bounce_mail("vacation", verp=address(hard), recipient=READER),
                 bounce_mail("postfix_hard", verp="bounces+d1.1.aaaaaaaaaaaaaaaa@example.com",
                             recipient="soft@example.net")]  # forged
    connection = imap(imap_server)
    for raw in mails:
        connection.append("INBOX", None, None, raw)
    connection.logout()

    # Crash before commit: the database is unreachable, so nothing may be moved.
    broken = poll(app, imap_server, DATABASE_URL="sqlite:////nonexistent/dir/db.sqlite")
    assert "moved 0" in broken.stdout, broken.stdout + broken.stderr
    assert folder_count(imap_server, "INBOX") == 5

    result = poll(app, imap_server)
    assert result.returncode == 0, result.stderr
    assert "read 5 message(s), moved 5" in result.stdout
    assert (folder_count(imap_server, "INBOX"), folder_count(imap_server, "Processed")) == (0, 5)
    with app.app_context():
        status = dict(db.session.execute(select(Subscriber.id, Subscriber.status)).all())
        kinds = sorted(kind.value for kind in db.session.scalars(select(BounceEvent.kind)))
    assert status == {hard: SubscriberStatus.BOUNCED, soft: SubscriberStatus.ACTIVE,
                      complainer: SubscriberStatus.UNSUBSCRIBED}
    assert kinds == ["complaint", "hard", "soft", "unparsed", "unparsed"]

    # A message read again (a crash after the commit, before the move) counts once.
    connection = imap(imap_server)
    connection.append("INBOX", None, None, mails[0])
    connection.logout()
    again = poll(app, imap_server)
    assert "duplicate" in again.stdout and "moved 1" in again.stdout
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(
            BounceEvent.kind == BounceKind.HARD)) == 1


def test_poll_refuses_an_untrusted_certificate_and_bad_settings(app, clean_state, imap_server):
    env = subprocess_env(app, BOUNCE_IMAP_URL=imap_server.url())  # system CAs only
    result = run(".venv/bin/flask", "--app", "newsletter", "bounces", "poll", env=env)
    assert result.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in result.stderr
    wrong = imap_server.url().replace("mailbox-password", "wrong")
    result = poll(app, imap_server, BOUNCE_IMAP_URL=wrong)
    assert result.returncode == 1 and "cannot log in" in result.stderr
    result = run(".venv/bin/flask", "--app", "newsletter", "bounces", "poll",
                 env=subprocess_env(app))
    assert result.returncode == 1 and "NEWSLETTER_BOUNCE_IMAP_URL is not set" in result.stderr
    result = run(".venv/bin/flask", "--app", "newsletter", "bounces", "poll",
                 env=subprocess_env(app, BOUNCE_IMAP_URL="http://example.com/"))
    assert result.returncode != 0 and "NEWSLETTER_BOUNCE_IMAP_URL" in result.stderr


def test_poll_over_starttls(app, clean_state, imap_server):
    empty(imap_server)
    digest_id, (reader,) = sent_issue(app, [READER])
    from newsletter.mail import verp
    with app.app_context():
        address = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    connection = imap(imap_server)
    connection.append("INBOX", None, None,
                      bounce_mail("exim_hard", verp=address, recipient=READER))
    connection.logout()
    result = poll(app, imap_server, BOUNCE_IMAP_URL=imap_server.url(starttls=True))
    assert result.returncode == 0 and "moved 1" in result.stdout, result.stderr
    with app.app_context():
        assert db.session.get(Subscriber, reader).status == SubscriberStatus.BOUNCED
