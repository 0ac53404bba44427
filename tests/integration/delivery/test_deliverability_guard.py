"""The guard: a send where 10 % of recipients bounce pauses itself before 1,000 messages.

The relay (aiosmtpd) answers 250 to everything, like a real one; a thread plays
the remote mail systems and sends a DSN for each dead address back to the running
bounce receiver over SMTP, while the send goes on.
"""

from __future__ import annotations

import smtplib
import threading
import time

from sqlalchemy import insert, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Digest, DigestStatus, Subscriber, SubscriberStatus
from tests.factories import add_article, make_editor, send_now
from tests.helpers import bounce_mail, csrf_token_from, login, wait_until

READERS = 2000
DEAD_DOMAIN = "gone.example"


class BouncingWorld(threading.Thread):
    """Mails a DSN back for every message the relay accepted for a dead address."""

    def __init__(self, mailbox, receiver_port: int):
        super().__init__(daemon=True)
        self.mailbox, self.port = mailbox, receiver_port
        self.stop, self.seen, self.bounced = threading.Event(), 0, 0

    def run(self):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            while not self.stop.is_set():
                envelopes = list(self.mailbox.envelopes[self.seen:])
                self.seen += len(envelopes)
                for mail_from, rcpts in envelopes:
                    if rcpts[0].endswith("@" + DEAD_DOMAIN):
                        smtp.sendmail("", [mail_from], bounce_mail(
                            "postfix_hard", verp=mail_from, recipient=rcpts[0]))
                        self.bounced += 1
                if not envelopes:  # a relay's poll of its queue, not a wait of the test
                    time.sleep(0.02)


def digest_state(app, digest_id: int) -> tuple[DigestStatus, str | None, dict]:
    with app.app_context():
        digest = db.session.get(Digest, digest_id)
        return digest.status, digest.pause_reason, digests.progress(digest_id)


def wait_for(condition, timeout: float = 120):
    return wait_until(condition, timeout, interval=0.1)


def test_bouncing_send_pauses_itself_alerts_owners_and_resumes_on_confirmation(
        app, client, celery_worker, mailbox, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "GUARD_MIN_SAMPLE", 500)
    monkeypatch.setitem(app.config, "GUARD_MAX_HARD_BOUNCE_PERCENT", 5.0)
    mailbox.delay = 0.002  # a relay's pace, so DSNs come back while the send runs
    make_editor(app, "owner@example.com")
    with app.app_context():
        db.session.execute(insert(Subscriber), [
            {"email": f"r{n}@{DEAD_DOMAIN if n % 10 == 0 else 'live.example'}",
             "email_normalized": f"r{n}@{DEAD_DOMAIN if n % 10 == 0 else 'live.example'}",
             "status": SubscriberStatus.ACTIVE} for n in range(READERS)])
        db.session.commit()
    world = BouncingWorld(mailbox, receiver)
    world.start()
    try:
        add_article(app)
        digest_id = send_now(app)
        status, reason, progress = wait_for(
            lambda: (state := digest_state(app, digest_id))[0] != DigestStatus.SENDING and state)
        assert status == DigestStatus.PAUSED, progress
        assert reason.startswith("deliverability guard: hard bounces")
        paused_at = progress["sent"]
        assert 500 <= paused_at < 1000, progress
        # The batch in flight when it paused has finished.
        wait_for(lambda: digest_state(app, digest_id)[2]["sending"] == 0, 60)
        assert digest_state(app, digest_id)[2]["sent"] < 1000
        print(f"\npaused after {paused_at} messages; {reason}")

        # Owners get the alert mail with the figures.
        def alert():
            return [m for m in list(mailbox.messages)
                    if m["To"].addresses[0].addr_spec == "owner@example.com"]
        (mail,) = wait_for(alert, 30)
        assert mail["Subject"].startswith(f"Send paused: issue {digest_id}")
        assert "hard bounces" in mail.get_content() and DEAD_DOMAIN in mail.get_content()

        # The dashboard and the issue page show it; a plain resume is refused.
        login(client, "owner@example.com")
        assert "paused itself" in client.get("/admin/").get_data(as_text=True)
        report = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
        assert "guard-banner" in report and DEAD_DOMAIN in report
        token = csrf_token_from(client, f"/admin/digests/{digest_id}")
        client.post(f"/admin/digests/{digest_id}/resume", data={"csrf_token": token})
        client.post(f"/admin/bounces/digests/{digest_id}/resume", data={"csrf_token": token})
        assert digest_state(app, digest_id)[0] == DigestStatus.PAUSED

        # With the confirmation it goes on; the guard judges what is sent from now on.
        client.post(f"/admin/bounces/digests/{digest_id}/resume",
                    data={"csrf_token": token, "confirm": "yes"})
        with app.app_context():
            assert db.session.get(Digest, digest_id).guard_acknowledged_at is not None
        status, reason, progress = wait_for(
            lambda: (state := digest_state(app, digest_id))[2]["sent"] > paused_at + 400
            and state)
        print(f"after the confirmed resume: {progress['sent']} sent, status {status.value}")
    finally:
        world.stop.set()
        world.join(timeout=30)
        with app.app_context(), unit_of_work():
            digests.cancel(digest_id)
        # The batch in flight finishes its rows; let it, so no mail leaks into the next test.
        wait_for(lambda: digest_state(app, digest_id)[2]["sending"] == 0, 60)
    with app.app_context():
        bounced = db.session.scalar(select(db.func.count()).where(
            Subscriber.status == SubscriberStatus.BOUNCED))
    assert bounced == world.bounced > 50
