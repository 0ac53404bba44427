"""Owners' views of bounces: the not-understood box, raw reports, reactivation, charts,
resuming a send the guard paused; each owner act leaves an audit record."""

from __future__ import annotations

from sqlalchemy import update

from newsletter.bounces import intake
from newsletter.db import unit_of_work
from newsletter.delivery import guard
from newsletter.extensions import db
from newsletter.models import BounceSource, Digest, DigestStatus, Subscriber, SubscriberStatus
from tests.factories import add_editor, deliver, make_editor, sent_issue
from tests.helpers import READER, audit_rows, csrf_token_from, login


def test_not_understood_box_raw_report_and_reactivation(app, client):
    digest_id, (reader,) = sent_issue(app, [READER])
    deliver(app, "gmail_hard", digest_id, reader)
    with app.app_context():
        with unit_of_work():
            parked = intake.receive_mail(b"Subject: <script>alert(1)</script>\r\n\r\nhello",
                                          BounceSource.SMTP)
        raw_id = intake.not_understood()[0].raw_message_id
    assert parked.summary.startswith("parked")
    make_editor(app)
    login(client)

    box = client.get("/admin/bounces/").get_data(as_text=True)
    assert "not a bounce we understand" in box and "<script>alert" not in box
    raw = client.get(f"/admin/bounces/raw/{raw_id}")
    assert raw.mimetype == "text/plain" and "attachment" in raw.headers["Content-Disposition"]
    assert raw.data.startswith(b"Subject: <script>")
    assert client.get("/admin/bounces/raw/999999").status_code == 404

    page = client.get(f"/admin/subscribers/{reader}").get_data(as_text=True)
    assert "5.1.1" in page and "Reactivate this reader" in page
    token = csrf_token_from(client, f"/admin/subscribers/{reader}")
    client.post(f"/admin/bounces/subscribers/{reader}/reactivate", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(Subscriber, reader).status == SubscriberStatus.ACTIVE
    assert "reactivated by editor@example.com" in client.get(
        f"/admin/subscribers/{reader}").get_data(as_text=True)
    # Without the CSRF token nothing happens.
    assert client.post(f"/admin/bounces/subscribers/{reader}/reactivate").status_code == 400


def test_dashboard_and_issue_report_show_rates_and_thresholds(app, client):
    digest_id, (reader, _) = sent_issue(app, [READER, "bob@example.net"])
    deliver(app, "arf_complaint", digest_id, reader)
    make_editor(app)
    login(client)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert "Bounces and complaints, last 30 days" in dashboard
    assert "0.3 % limit" in dashboard and "0.1 % target" in dashboard
    assert "complaints 50.000 %" in dashboard
    report = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert "complaints 1 (50.000 %)" in report and "mail.example.org" in report


def guard_paused_issue(app) -> int:
    """An issue the deliverability guard paused half-way (its rows set directly)."""
    digest_id, _ = sent_issue(app, [READER, "bob@example.net"])
    with app.app_context(), unit_of_work():
        db.session.execute(update(Digest).where(Digest.id == digest_id).values(
            status=DigestStatus.PAUSED, pause_reason=guard.REASON_PREFIX + "hard bounces 9 %"))
    return digest_id


def test_only_an_owner_resumes_a_guarded_send_and_it_is_recorded(app, client):
    digest_id = guard_paused_issue(app)
    make_editor(app, "owner@example.com")
    add_editor(app, "editor@example.com", "editor")
    login(client, "editor@example.com")
    report = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert "guard-owner-only" in report and "bounces/digests" not in report
    token = csrf_token_from(client, f"/admin/digests/{digest_id}")
    refused = client.post(f"/admin/bounces/digests/{digest_id}/resume",
                          data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 403
    with app.app_context():
        assert db.session.get(Digest, digest_id).status == DigestStatus.PAUSED
    [denied] = audit_rows(app, action="access", outcome="denied")
    assert denied.actor == "editor@example.com" and denied.target == "admin.bounce_resume"

    owner = app.test_client()
    login(owner, "owner@example.com")
    token = csrf_token_from(owner, f"/admin/digests/{digest_id}")
    owner.post(f"/admin/bounces/digests/{digest_id}/resume", data={"csrf_token": token})
    owner.post(f"/admin/bounces/digests/{digest_id}/resume",
               data={"csrf_token": token, "confirm": "yes"})
    with app.app_context():
        resumed = db.session.get(Digest, digest_id)
        assert resumed.status != DigestStatus.PAUSED and resumed.guard_acknowledged_at
    assert [(row.actor, row.outcome, row.target) for row in audit_rows(
        app, action="guard_resume")] == [("owner@example.com", "failed", f"digest {digest_id}"),
                                         ("owner@example.com", "ok", f"digest {digest_id}")]


def test_raw_reports_reactivation_settings_and_erasure_leave_audit_rows(app, client):
    digest_id, (reader,) = sent_issue(app, [READER])
    deliver(app, "gmail_hard", digest_id, reader)
    with app.app_context():
        with unit_of_work():
            intake.receive_mail(b"Subject: hello\r\n\r\nhello", BounceSource.SMTP)
        raw_id = intake.not_understood()[0].raw_message_id
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/settings/")
    assert client.get(f"/admin/bounces/raw/{raw_id}").status_code == 200
    client.post(f"/admin/bounces/subscribers/{reader}/reactivate", data={"csrf_token": token})
    client.post(f"/admin/bounces/subscribers/{reader}/reactivate", data={"csrf_token": token})
    bad = client.post("/admin/settings/", data={"csrf_token": token, "accent_color": "red"})
    assert bad.status_code == 400
    client.post(f"/admin/subscribers/{reader}/erase", data={"csrf_token": token})
    client.post(f"/admin/subscribers/{reader}/erase", data={"csrf_token": token,
                                                           "confirm": "yes"})

    def recorded(action):
        return [(row.outcome, row.target) for row in audit_rows(app, action=action)]

    assert recorded("bounce_raw_download") == [("ok", f"bounce report {raw_id}")]
    assert recorded("reactivate") == [("ok", f"subscriber {reader}"),
                                      ("failed", f"subscriber {reader}")]
    assert recorded("settings") == [("failed", "site settings")]
    assert recorded("erase") == [("failed", f"subscriber {reader}"),
                                 ("ok", f"subscriber {reader}")]
