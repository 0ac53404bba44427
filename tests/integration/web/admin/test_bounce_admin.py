"""Owners' views of bounces: the not-understood box, raw reports, reactivation, charts."""

from __future__ import annotations

from newsletter.bounces import intake
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import BounceSource, Subscriber, SubscriberStatus
from tests.factories import deliver, make_editor, sent_issue
from tests.helpers import READER, csrf_token_from, login


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
