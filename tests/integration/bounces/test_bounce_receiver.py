"""End to end with real parts: a digest goes out through the SMTP server (which accepts
everything, like a relay), real DSNs and an ARF complaint come back over SMTP to the
running `flask bounces serve`, and the next digest skips whom they name."""

from __future__ import annotations

import base64
import os
import re
import smtplib
import time

import pytest
from sqlalchemy import func, select

from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.mail import verp
from newsletter.models import (
    BounceEvent,
    BounceKind,
    BounceMessage,
    Delivery,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
)
from tests.factories import add_article, send_now, sent_issue
from tests.helpers import (
    HARD_FORMATS,
    SOFT_FORMATS,
    bounce_mail,
    wait_until_sent,
)


def send_report(port: int, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("", [recipient], raw)  # DSNs come from the null sender


def big_mail(size: int) -> bytes:
    """A bounce with a huge attachment: base64 lines, as an MTA would send it."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    return b"Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n" + line * (
        size // len(line))


def add_readers(app, emails: list[str]) -> dict[str, int]:
    with app.app_context():
        for email in emails:
            db.session.add(Subscriber(email=email, email_normalized=email,
                                      status=SubscriberStatus.ACTIVE))
        db.session.commit()
        return dict(db.session.execute(select(Subscriber.email, Subscriber.id)).all())


def test_dsns_and_complaints_over_smtp_stop_the_next_digest(app, client, celery_worker,
                                                          mailbox, receiver):
    hard = {name: f"hard-{n}@{name.split('_')[0]}.example" for n, name in
            enumerate(HARD_FORMATS)}
    soft = {name: f"soft-{n}@{name.split('_')[0]}.example" for n, name in
            enumerate(SOFT_FORMATS)}
    complainer, keeper = "complainer@yahoo.example", "keeper@example.org"
    ids = add_readers(app, [*hard.values(), *soft.values(), complainer, keeper])
    add_article(app)
    digest_id = send_now(app)
    assert wait_until_sent(app, digest_id)["sent"] == len(ids)
    messages = mailbox.wait_for(len(ids))

    # VERP: one envelope sender per reader; From and the Message-ID as before.
    senders = {rcpts[0]: mail_from for mail_from, rcpts in mailbox.envelopes if rcpts[0] in ids}
    assert len(set(senders.values())) == len(ids)
    assert all(s.startswith("bounces+d") and s.endswith("@example.com")
               for s in senders.values())
    by_rcpt = {m["To"].addresses[0].addr_spec: m for m in messages}
    assert by_rcpt[keeper]["From"] == "The Test Daily <news@example.com>"
    # The Message-ID names the delivery without showing its ids.
    message_id = by_rcpt[keeper]["Message-ID"]
    assert re.fullmatch(r"<[a-z2-7]{26}@example\.com>", message_id)
    with app.app_context():
        assert verp.ref_in_message_id(message_id) == verp.DeliveryRef(
            digest_id=digest_id, subscriber_id=ids[keeper])
    assert by_rcpt[keeper]["Feedback-ID"] == (
        f"issue-{digest_id}:newsletter.localhost:digest:example.com")

    for name, email in [*hard.items(), *soft.items(), ("arf_complaint", complainer)]:
        send_report(receiver, senders[email], bounce_mail(
            name, verp=senders[email], recipient=email,
            message_id=by_rcpt[email]["Message-ID"]))

    with app.app_context():
        status = dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())
        kinds = {ids_email: kind for ids_email, kind in db.session.execute(
            select(Subscriber.email, BounceEvent.kind).join(
                BounceEvent, BounceEvent.subscriber_id == Subscriber.id))}
    assert {status[email] for email in hard.values()} == {SubscriberStatus.BOUNCED}
    assert {status[email] for email in soft.values()} == {SubscriberStatus.ACTIVE}
    assert {kinds[email] for email in soft.values()} == {BounceKind.SOFT}
    assert status[complainer] == SubscriberStatus.UNSUBSCRIBED
    assert status[keeper] == SubscriberStatus.ACTIVE
    # The contract other tools rely on: `subscribers export` has the status column.
    exported = app.test_cli_runner().invoke(args=["subscribers", "export"]).output.splitlines()
    assert exported[0].split(",")[:3] == ["email", "name", "status"]
    rows = {line.split(",")[0]: line.split(",")[2] for line in exported[1:]}
    assert rows[hard["gmail_hard"]] == "bounced" and rows[complainer] == "unsubscribed"

    # The reader's page shows each event with its reason.
    from tests.factories import make_editor
    from tests.helpers import login
    make_editor(app)
    login(client)
    page = client.get(f"/admin/subscribers/{ids[hard['exchange_hard']]}").get_data(as_text=True)
    assert "RecipientNotFound" in page and "reader marked bounced" in page

    # The next digest goes to the keeper and the soft-bounced readers only.
    mailbox.reset()
    add_article(app, title="Second issue", url="https://news.example.com/second")
    second = send_now(app)
    wait_until_sent(app, second)
    with app.app_context():
        recipients = set(db.session.scalars(select(Subscriber.email).join(
            Delivery, Delivery.subscriber_id == Subscriber.id).where(
            Delivery.digest_id == second)))
    assert recipients == {keeper, *soft.values()}


def test_receiver_refuses_relaying_forgeries_and_huge_mails(app, clean_state, receiver):
    with smtplib.SMTP("127.0.0.1", receiver, timeout=30) as smtp:
        smtp.ehlo("mx.example.net")
        assert smtp.mail("")[0] == 250
        assert smtp.rcpt("victim@elsewhere.example")[0] == 550  # never relays
        assert smtp.rcpt("postmaster@example.com")[0] == 550
        assert smtp.rcpt("bounces+d1.2.aaaaaaaaaaaaaaaa@example.com")[0] == 550  # forged
        assert smtp.rcpt("bounces@example.com")[0] == 250  # e.g. a feedback loop's address
        # 20 MB: refused at DATA, whatever the client said about its size.
        code, _ = smtp.data(big_mail(20 * 1024 * 1024))
        assert code == 552
    with smtplib.SMTP("127.0.0.1", receiver, timeout=30) as smtp:
        smtp.ehlo("mx.example.net")
        assert smtp.mail("")[0] == 250 and smtp.rcpt("bounces@example.com")[0] == 250
        # Without a token, a smaller cap: reading a report costs CPU.
        assert smtp.data(big_mail(600_000))[0] == 552
    with smtplib.SMTP("127.0.0.1", receiver, timeout=30) as smtp:
        smtp.ehlo("mx.example.net")
        assert smtp.has_extn("size")
        with pytest.raises(smtplib.SMTPSenderRefused):  # SIZE announced: refused at MAIL
            smtp.sendmail("", ["bounces@example.com"], big_mail(3_000_000))
    with app.app_context():
        assert db.session.scalar(select(BounceEvent.id)) is None  # nothing recorded


def test_confirmation_mail_bounce_marks_the_pending_reader(app, client, celery_worker, mailbox,
                                                         receiver):
    from tests.helpers import csrf_token_from

    client.post("/subscribe", data={"email": "typo@gmial.example",
                                    "csrf_token": csrf_token_from(client, "/subscribe")})
    (confirmation,) = mailbox.wait_for(1)
    ((envelope_from, rcpts),) = mailbox.envelopes
    with app.app_context():
        mail_id = db.session.scalar(select(OutboxMail.id))
    assert envelope_from.startswith("bounces+o") and rcpts == ["typo@gmial.example"]
    assert confirmation["From"] == "The Test Daily <news@example.com>"
    send_report(receiver, envelope_from, bounce_mail(
        "postfix_hard", verp=envelope_from, recipient="typo@gmial.example"))
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        event = db.session.scalar(select(BounceEvent))
        assert subscriber.status == SubscriberStatus.BOUNCED
        assert (event.outbox_mail_id, event.kind) == (mail_id, BounceKind.HARD)


def stranger_mail(size: int) -> bytes:
    """Junk a stranger mails to bounces@: random base64 lines (no compression helps)."""
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (b"From: someone@stranger.example\r\nSubject: hello\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"\r\n" + body[:size])


def database_bytes(app) -> int:
    """Space the database uses: SQLite's pages in use, PostgreSQL's tables with their
    TOAST and indexes (after VACUUM FULL, so no dead space can absorb new rows)."""
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                pages, free, size = (connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                                     for name in ("page_count", "freelist_count", "page_size"))
            return (pages - free) * size
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM FULL bounce_messages")
            connection.exec_driver_sql("VACUUM FULL bounce_events")
            return connection.exec_driver_sql(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
                " AND c.relkind = 'r'").scalar()


def test_stranger_mail_to_the_bounce_address_keeps_a_few_kb_each(app, clean_state,
                                                                  start_receiver):
    # Tokenless mail up to the general cap, so that 2 MB ones are accepted and stored.
    receiver = start_receiver(BOUNCE_TOKENLESS_MAX_SIZE=app.config["BOUNCE_MAX_SIZE"])
    before = database_bytes(app)
    for _ in range(5):
        raw = stranger_mail(2_000_000)
        with smtplib.SMTP("127.0.0.1", receiver, timeout=60) as smtp:
            assert smtp.sendmail("", ["bounces@example.com"], raw) == {}  # accepted: 250
    grown = database_bytes(app) - before
    assert grown <= 1024 * 1024, f"the database grew by {grown} bytes"
    with app.app_context():
        kept = db.session.execute(select(BounceMessage.size, BounceMessage.raw)).all()
        kinds = set(db.session.scalars(select(BounceEvent.kind)))
    assert kinds == {BounceKind.UNPARSED} and len(kept) == 5
    assert all(size >= 2_000_000 for size, _ in kept)
    assert all(len(stored) == 4096 and stored.startswith(b"From: someone@") for _, stored in kept)


def open_session(port: int, client: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(client, 0))
    smtp.ehlo("mx.example.net")
    return smtp


def test_mail_without_a_token_is_capped_per_client_and_per_day(app, clean_state,
                                                              start_receiver):
    digest_id, (reader,) = sent_issue(app, ["reader@example.org"])
    with app.app_context():
        genuine = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    port = start_receiver(BOUNCE_TOKENLESS_PER_CLIENT_PER_DAY=2, BOUNCE_TOKENLESS_PER_DAY=3)

    def tokenless(client: str, recipients=("bounces@example.com",)) -> int:
        with open_session(port, client) as smtp:
            smtp.mail("")
            codes = [smtp.rcpt(recipient)[0] for recipient in recipients]
            if codes[0] == 250:
                body = f"Subject: hi\r\n\r\nhello {time.monotonic_ns()}".encode()
                assert smtp.data(body)[0] == 250
            return codes[0]

    # One message with several recipients counts once.
    assert tokenless("127.0.0.2", ["bounces@example.com", "BOUNCES@example.com"]) == 250
    assert tokenless("127.0.0.2") == 250
    assert tokenless("127.0.0.2") == 450  # this client's share is used up ...
    assert tokenless("127.0.0.2") == 450  # ... and refusals do not count against others
    assert tokenless("127.0.0.3") == 250  # another client still gets through ...
    assert tokenless("127.0.0.4") == 452  # ... until everyone's daily share is used up
    # A report carrying a genuine token is never capped: it is one of our deliveries.
    with open_session(port, "127.0.0.2") as smtp:
        assert smtp.mail("")[0] == 250 and smtp.rcpt(genuine)[0] == 250
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 3


def test_a_reader_replaying_their_own_token_stores_megabytes_only_once(app, clean_state,
                                                                     receiver):
    """Anyone who got one of our mails holds a genuine token (their Return-Path): only
    the first report about that delivery keeps all its bytes."""
    digest_id, (reader,) = sent_issue(app, ["reader@example.org"])
    with app.app_context():
        sender = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    padding = b"X-Padding: " + b"p" * 900 + b"\r\n"
    for n in range(3):
        raw = bounce_mail("postfix_hard", verp=sender, recipient="reader@example.org")
        raw = raw.replace(b"\r\n", b"\r\n" + padding * (200 + n), 1)  # ~180 KB, distinct
        send_report(receiver, sender, raw)
    with app.app_context():
        sizes = [(size, len(stored)) for size, stored in db.session.execute(
            select(BounceMessage.size, BounceMessage.raw).order_by(BounceMessage.id))]
    assert len(sizes) == 3 and sizes[0][0] == sizes[0][1] > 100_000
    assert [kept for _, kept in sizes[1:]] == [4096, 4096]


def test_without_redis_mail_without_a_token_is_asked_to_retry(app, clean_state,
                                                             start_receiver):
    digest_id, (reader,) = sent_issue(app, ["reader@example.org"])
    with app.app_context():
        genuine = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    port = start_receiver(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with open_session(port, "127.0.0.1") as smtp:
        assert smtp.mail("")[0] == 250
        assert smtp.rcpt("bounces@example.com")[0] == 451  # the caps cannot be checked
        assert smtp.rcpt(genuine)[0] == 250  # our own delivery coming back: taken
