"""Issue 9, compose: what is typed is what is previewed, tested, confirmed and sent;
the send goes to exactly the readers confirmed; the rest of a send says what it waits for."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from newsletter.bounces import intake
from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.mail import verp
from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus, utcnow
from tests.factories import add_article, add_subscribers, make_editor, send_now
from tests.helpers import csrf_token_from, login, wait_until_sent


def digest_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Digest))


def test_the_preview_follows_every_field_and_changes_nothing(app, client):
    make_editor(app)
    login(client)
    add_article(app)
    query = {"subject": "Our week", "headline": "Peace & talks", "intro": "Read <b>this</b>."}
    text = client.get("/admin/digests/preview", query_string={**query, "part": "text"})
    assert text.mimetype == "text/plain"
    body = text.get_data(as_text=True)
    assert body.startswith("Subject: Our week\n\nThe Newsletter\n\nPeace & talks\n")
    assert "Read <b>this</b>." in body
    html = client.get("/admin/digests/preview", query_string=query).get_data(as_text=True)
    assert "Peace &amp; talks</h1>" in html and "Read &lt;b&gt;this&lt;/b&gt;." in html
    assert "<title>Our week</title>" in html
    # Empty headline: the default, the site name and the date, not the subject repeated.
    default = client.get("/admin/digests/preview", query_string={"subject": "Our week"})
    assert "Our week</h1>" not in default.get_data(as_text=True)
    with app.app_context():
        assert f">{digests.default_headline()}</h1>" in default.get_data(as_text=True)
    # The page's script posts the form itself: an intro too long for a URL still shows.
    token = csrf_token_from(client, "/admin/digests")
    long_intro = "word " * 1000
    posted = client.post("/admin/digests/preview?part=text",
                         data={"csrf_token": token, "intro": long_intro})
    assert posted.status_code == 200 and long_intro.strip() in posted.get_data(as_text=True)
    assert digest_count(app) == 0


def test_the_preview_names_any_typed_topic_it_cannot_honour(app, client):
    make_editor(app)
    login(client)
    with app.app_context(), unit_of_work():
        topics.create_topic("europe", "Europe", categories=["Europe"])
        topics.create_topic("asia", "Asia")
    add_article(app)  # filed under Europe

    def preview(typed: str, part: str | None = None):
        response = client.get("/admin/digests/preview",
                              query_string={"as_topics": typed, "part": part})
        assert response.status_code == 200, typed
        return response.get_data(as_text=True)

    assert "unknown topic" not in preview("europe")
    half = preview("eur")
    assert "Previewed as the whole issue: unknown topic &#39;eur&#39;</p>" in half
    assert ">Talks resume in Geneva</a>" in half  # the issue itself, not escaped
    assert "Previewed as a reader of europe: unknown topic 'eur'" in preview("europe, eur",
                                                                               "text")
    assert "Nothing new for a reader of these topics" in preview("asia")
    hostile = preview("<script>x</script>")
    assert "<script>x" not in hostile and "&lt;script&gt;x" in hostile
    page = client.get("/admin/digests", query_string={"as_topics": "eur"})
    assert page.status_code == 200 and "unknown topic &#39;eur&#39;" in page.get_data(
        as_text=True)


def test_send_goes_to_exactly_the_readers_confirmed(app, client, mailbox):
    make_editor(app)
    login(client)
    add_subscribers(app, 3)
    add_article(app)
    token = csrf_token_from(client, "/admin/digests")
    typed = {"csrf_token": token, "subject": "Our week", "headline": "", "intro": "Hi",
             "send_date": "", "send_time": ""}
    asked = client.post("/admin/digests/send", data=typed).get_data(as_text=True)
    assert "Send ‘Our week’ to 3 readers?" in asked and 'name="confirmed" value="3"' in asked
    # "Back to edit": the form as typed, nothing sent.
    back = client.post("/admin/digests", data=typed).get_data(as_text=True)
    assert 'value="Our week"' in back and "Hi</textarea>" in back

    add_subscribers(app, 1, prefix="late")  # someone confirms while the editor reads
    changed = client.post("/admin/digests/send", data={**typed, "confirmed": "3"})
    assert changed.status_code == 409
    assert "Send ‘Our week’ to 4 readers?" in changed.get_data(as_text=True)
    assert digest_count(app) == 0  # nothing started, no empty issue left behind
    for junk in ("-1", "3.0", "³", "9" * 40):  # never a 500; treated as not yet confirmed
        response = client.post("/admin/digests/send", data={**typed, "confirmed": junk})
        assert response.status_code == 200 and "to 4 readers?" in response.get_data(as_text=True)
    sent = client.post("/admin/digests/send", data={**typed, "confirmed": "4"})
    assert sent.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Digest.recipients)) == 4


def test_the_dashboard_lists_issues_with_readers_not_reached(app, client, celery_worker,
                                                             mailbox):
    mailbox.rejected_recipients = {"reader1@example.com"}  # 550 5.1.1 at RCPT
    make_editor(app)
    login(client)
    add_subscribers(app, 3)
    add_article(app)
    assert 'id="failing"' not in client.get("/admin/").get_data(as_text=True)
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    dashboard = client.get("/admin/").get_data(as_text=True)
    card = dashboard.split('id="failing"', 1)[1].split("</table>", 1)[0]
    assert f'href="/admin/digests/{digest_id}#not-reached"' in card
    assert "<td>1</td><td>0</td><td>0</td>" in card  # failed, unknown, deferred


def test_the_progress_line_says_what_the_send_waits_for(app, clean_state):
    ids = add_subscribers(app, 6)
    add_article(app)
    with app.app_context():
        # A send whose rows are written by hand and no task is published, so no worker
        # (another test's) can move them while the line is read.
        digest = digests.compose()
        digest.status = DigestStatus.SENDING
        now = utcnow()
        lease, retry = now + timedelta(minutes=5), now + timedelta(seconds=40)
        db.session.add_all(
            [Delivery(digest_id=digest.id, subscriber_id=ids[0], status=DeliveryStatus.SENT)]
            + [Delivery(digest_id=digest.id, subscriber_id=i, status=DeliveryStatus.SENDING,
                        claim="x", lease_until=lease) for i in ids[1:3]]
            + [Delivery(digest_id=digest.id, subscriber_id=i, status=DeliveryStatus.DEFERRED,
                        next_attempt_at=retry) for i in ids[3:]])
        db.session.commit()

        def line(at=now, **extra):
            return digests.waiting_for(digest.id, {**digests.progress(digest.id), **extra}, at)

        assert line() == "2 in flight, 3 deferred, next retry in 40 s"
        assert line(pending=4) == ("2 in flight, 4 waiting for a worker, 3 deferred, "
                                   "next retry in 40 s")
        assert line(now + timedelta(minutes=1)).endswith("3 deferred, retrying now")
        assert digests.pause_for_relay(digest.id, "connection refused")
        assert line() == ("paused: Paused automatically: the mail relay could not be "
                          "reached (connection refused)")
        digest.status = DigestStatus.SENDING  # as resume does, without publishing tasks
        db.session.commit()
        assert digests.pause(digest.id)
        assert line() == "paused: by an editor"


def test_a_test_mail_goes_out_with_a_verp_envelope_like_a_real_send(app, client, mailbox):
    add_article(app)
    with app.app_context():
        result = digests.send_test("editor@example.com", subject="Our week")
    assert result.outcome.value == "sent"
    mail = mailbox.wait_for(1)[0]
    envelope_from, recipients = mailbox.envelopes[0]
    assert recipients == ["editor@example.com"] and mail["Subject"] == "[Test] Our week"
    assert envelope_from.startswith("bounces+") and envelope_from.endswith("@example.com")
    with app.app_context():
        # Signed like every token; it names no reader, so its bounce changes nobody.
        assert verp.read_token(verp.token_in_address(envelope_from)) == verp.TEST_MAIL
        assert intake.subscriber_for(verp.TEST_MAIL) is None
