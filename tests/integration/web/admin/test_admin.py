"""The editor workspace: access control, CSRF, and its actions over the services."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import (
    ApiToken,
    Article,
    ConsentEvent,
    Digest,
    DigestStatus,
    OutboxMail,
    Subscriber,
    SubscriberStatus,
)
from tests.factories import add_article, add_subscribers, make_editor
from tests.helpers import (
    csrf_token_from,
    example_path,
    finished_job_page,
    login,
    process_subscribe_requests,
    upload,
    wait_until_sent,
)


def admin_rules(app):
    """Every /admin rule but the public ones (login, second factor, invitation)."""
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")
            and getattr(app.view_functions[rule.endpoint], "allowed_role", None) != "public"]


def test_every_admin_route_refuses_anonymous_access(app, client):
    rules = admin_rules(app)
    assert len(rules) >= 10
    for rule in rules:
        path = example_path(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(path, method=method)
            assert response.status_code in (302, 400), (method, path)
            if response.status_code == 302:
                assert "/admin/login" in response.headers["Location"]


def test_every_admin_post_refuses_a_forged_csrf_token(app, client):
    make_editor(app)
    login(client)
    add_article(app)
    for rule in admin_rules(app):
        if "POST" in rule.methods:
            path = example_path(rule)
            response = client.post(path, data={"csrf_token": "forged", "exclude": "1"})
            assert response.status_code == 400, path
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0
        assert db.session.scalar(select(Article.excluded)) is False


def test_login_gives_one_answer_for_wrong_password_and_unknown_editor(app, client):
    make_editor(app)
    wrong = login(client, password="wrong password")
    unknown = login(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    message = "That email and password do not match an editor."
    assert message in wrong.get_data(as_text=True) and message in unknown.get_data(as_text=True)


@pytest.mark.parametrize("target, expected", [
    ("?next=/admin/subscribers", "/admin/subscribers"),
    ("?next=https://evil.example/", "/admin/"),
    ("?next=//evil.example/", "/admin/"),
    ("?next=/\\evil.example", "/admin/"),
])
def test_login_redirects_only_to_local_paths(app, client, target, expected):
    make_editor(app)
    response = login(client, next_path=target)
    assert response.status_code == 302 and response.headers["Location"] == expected


def test_login_is_rate_limited_per_network(app, client):
    make_editor(app)
    # Different accounts, so only the per-network limit (10 per minute) applies.
    statuses = [login(client, email=f"guess{n}@example.com").status_code for n in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429


def test_session_cookie_is_httponly_and_samesite(app, client):
    make_editor(app)
    cookie = login(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_dashboard_digest_and_subscriber_pages(app, client, celery_worker, mailbox):
    make_editor(app)
    login(client)
    add_subscribers(app, 3)
    add_article(app)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert "Confirmed readers" in dashboard and "Talks resume in Geneva" in dashboard
    compose = client.get("/admin/digests?subject=Our+week").get_data(as_text=True)
    assert "Our week" in compose and 'src="/admin/digests/preview?subject=Our+week"' in compose
    # The sandboxed frame's document: the mail's HTML under the mail policy (no script).
    frame = client.get("/admin/digests/preview?subject=Our+week")
    assert "Talks resume in Geneva" in frame.get_data(as_text=True)
    policy = frame.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy and "sandbox" in policy

    token = csrf_token_from(client, "/admin/digests")
    test_send = client.post("/admin/digests/test", data={"csrf_token": token,
                                                         "subject": "Our week"})
    assert test_send.status_code == 200  # the form comes back as typed
    assert 'name="subject" type="text" maxlength="300" value="Our week"' in test_send.get_data(
        as_text=True)
    [test_mail] = mailbox.wait_for(1)
    assert test_mail["To"] == "editor@example.com"
    assert test_mail["Subject"] == "[Test] Our week"

    asked = client.post("/admin/digests/send", data={"csrf_token": token, "subject": "Our week"})
    assert "Send ‘Our week’ to 3 readers?" in asked.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0  # only asked
    sent = client.post("/admin/digests/send", data={"csrf_token": token, "subject": "Our week",
                                                    "confirmed": "3"})
    assert sent.status_code == 302
    digest_id = int(sent.headers["Location"].rsplit("/", 1)[1])
    wait_until_sent(app, digest_id)
    progress = client.get(f"/admin/digests/{digest_id}/progress").get_json()
    assert (progress["status"], progress["sent"], progress["remaining"]) == ("sent", 3, 0)
    assert "100%" in client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)

    # A second click finds nothing new: one issue, a clear message.
    again = client.post("/admin/digests/send", data={"csrf_token": token},
                        follow_redirects=True)
    assert "nothing was sent" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 1

    listing = client.get("/admin/subscribers?q=reader1").get_data(as_text=True)
    assert "reader1@example.com" in listing and "reader2@example.com" not in listing
    assert client.get("/admin/subscribers/999999").status_code == 404


def test_exclude_keeps_an_article_out_of_the_next_digest(app, client):
    make_editor(app)
    login(client)
    article_id = add_article(app)
    token = csrf_token_from(client, "/admin/articles")
    client.post(f"/admin/articles/{article_id}/exclude", data={"csrf_token": token,
                                                               "exclude": "1"})
    assert "nothing to send" in client.get("/admin/digests").get_data(as_text=True)
    client.post(f"/admin/articles/{article_id}/exclude", data={"csrf_token": token,
                                                               "exclude": "0"})
    assert "Talks resume in Geneva" in client.get("/admin/digests").get_data(as_text=True)


def test_gdpr_export_and_erasure_keep_the_address_suppressed(app, client):
    make_editor(app)
    login(client)
    client.post("/api/v1/subscriptions", json={"email": "Erin@example.com", "name": "Erin"},
                headers={"User-Agent": "agent/1"})
    process_subscribe_requests(app)
    with app.app_context():
        subscriber_id = db.session.scalar(select(Subscriber.id))
    export = client.get(f"/admin/subscribers/{subscriber_id}/export.json")
    assert "attachment" in export.headers["Content-Disposition"]
    data = export.get_json()
    assert data["email"] == "Erin@example.com" and data["name"] == "Erin"
    assert data["consent_events"][0]["user_agent"] == "agent/1"
    assert data["mails"][0]["kind"] == "confirm"

    page = client.get(f"/admin/subscribers/{subscriber_id}").get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", page, re.DOTALL).group(1)
    assert title.startswith("Erin@example.com ·") and "Erase" not in title
    assert "Erase this reader" in page
    token = csrf_token_from(client, f"/admin/subscribers/{subscriber_id}")
    unconfirmed = client.post(f"/admin/subscribers/{subscriber_id}/erase",
                              data={"csrf_token": token}, follow_redirects=True)
    assert "Tick the box" in unconfirmed.get_data(as_text=True)
    erased = client.post(f"/admin/subscribers/{subscriber_id}/erase",
                         data={"csrf_token": token, "confirm": "yes"}, follow_redirects=True)
    assert "Personal data erased" in erased.get_data(as_text=True)
    with app.app_context():
        subscriber = db.session.get(Subscriber, subscriber_id)
        assert "erin" not in (subscriber.email + subscriber.email_normalized).lower()
        assert subscriber.name is None and subscriber.status == SubscriberStatus.UNSUBSCRIBED
        events = db.session.scalars(select(ConsentEvent)).all()
        assert all(e.ip_address is None and e.user_agent is None for e in events)
        assert all("erin" not in e.email.lower() for e in events)

    # The same address again: the same answer, and nothing stored or sent.
    again = client.post("/api/v1/subscriptions", json={"email": "erin@EXAMPLE.com"})
    assert again.status_code == 202
    process_subscribe_requests(app)
    imported = app.test_cli_runner().invoke(args=["subscribers", "import", "-", "--consent",
                                                  "x", "--here"],
                                            input="email\nerin@example.com\n")
    assert "added 0, duplicates 1" in imported.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 1


def test_csv_import_reports_before_it_writes(app, client, celery_worker):
    make_editor(app)
    login(client)
    report = upload(client, b"Email,Name\nada@example.com,Ada\nbroken,\nADA@example.com,\n"
                            b"bob@example.com,Bob\n", consent="double opt-in at OldTool")
    body = finished_job_page(client, report)
    assert re.search(r'id="valid">2<', body) and re.search(r'id="duplicates">1<', body)
    assert "not valid" in body and "<td>3</td>" in body  # line 3 is the broken one
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0

    upload_id = re.search(r'name="upload" value="([0-9a-f]{32})"', body).group(1)
    token = csrf_token_from(client, "/admin/subscribers/import")
    done = finished_job_page(client, client.post("/admin/subscribers/import", data={
        "csrf_token": token, "upload": upload_id, "consent": "double opt-in at OldTool",
        "action": "import"}))
    assert "Imported" in done and re.search(r'id="valid">2<', done)
    with app.app_context():
        assert set(db.session.scalars(select(Subscriber.status))) == {SubscriberStatus.ACTIVE}
    exported = client.get("/admin/subscribers/export.csv").get_data(as_text=True)
    assert exported.splitlines()[0].startswith("email,name,status")
    assert "ada@example.com,Ada,active" in exported


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe\x00\x01junk", "not UTF-8"),
    (b"name\nAda\n", "first line must name the columns"),
    (b"", "Choose a CSV file"),
])
def test_csv_import_rejects_bad_files_clearly(app, client, data, message):
    make_editor(app)
    login(client)
    response = upload(client, data)
    assert response.status_code == 400 and message in response.get_data(as_text=True)


def test_editor_adds_and_edits_articles(app, client):
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/articles/new")
    form = {"csrf_token": token, "title": "Elections\r\nin Chile", "summary": "",
            "url": "https://news.example.com/chile", "categories": "Americas, News",
            "body_format": "html",
            "body": '<p onclick="x()">Close vote.<script>alert(1)</script></p>'}
    assert client.post("/admin/articles/new", data=form).status_code == 302
    duplicate = client.post("/admin/articles/new", data=form)
    assert duplicate.status_code == 400 and "exists already" in duplicate.get_data(as_text=True)
    bad = client.post("/admin/articles/new", data={**form, "url": "javascript:alert(1)"})
    assert bad.status_code == 400 and "http(s) URL" in bad.get_data(as_text=True)
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.title == "Elections in Chile"
        assert article.categories == ["Americas", "News"]
        assert "script" not in article.body_html and "onclick" not in article.body_html
        assert article.source.value == "editor"
        article_id = article.id
    edited = client.post(f"/admin/articles/{article_id}/edit",
                         data={**form, "title": "Chile votes", "published_at": "someday"})
    assert edited.status_code == 400 and "publication time" in edited.get_data(as_text=True)
    for far in ("0001-01-01T00:10", "9999-12-31T23:59"):  # beyond what UTC can hold
        edited = client.post(f"/admin/articles/{article_id}/edit",
                             data={**form, "published_at": far})
        assert edited.status_code == 400 and "publication time" in edited.get_data(as_text=True)
    client.post(f"/admin/articles/{article_id}/edit", data={**form, "title": "Chile votes"})
    with app.app_context():
        assert db.session.get(Article, article_id).title == "Chile votes"
    assert client.get("/admin/articles/999/edit").status_code == 404


def test_markdown_articles_keep_their_source_and_render_sanitised(app, client):
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/articles/new")
    markdown = "## Vote\n\nThe **count** [ends](https://x.example/c).\n\n<script>alert(1)</script>"
    form = {"csrf_token": token, "title": "Count", "url": "https://news.example.com/count",
            "body_format": "markdown", "body": markdown, "published_at": "2026-11-28T14:34"}
    assert client.post("/admin/articles/new", data=form).status_code == 302
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.body_markdown == markdown
        assert "<h2>Vote</h2>" in article.body_html
        assert "<strong>count</strong>" in article.body_html
        assert "script" not in article.body_html
        # DIGEST_SCHEDULE is in UTC in the tests: the typed time is UTC.
        assert article.published_at.isoformat() == "2026-11-28T14:34:00+00:00"
        article_id = article.id
    page = client.get(f"/admin/articles/{article_id}/edit").get_data(as_text=True)
    assert "## Vote" in page
    assert 'value="2026-11-28"' in page and 'value="14:34"' in page  # the date and the time
    assert "28 Nov 2026 14:34 UTC" in client.get("/admin/articles").get_data(as_text=True)
    # The date and time fields are read as one time.
    form = {**form, "published_at": "", "published_date": "2026-11-29",
            "published_time": "09:05"}
    assert client.post(f"/admin/articles/{article_id}/edit", data=form).status_code == 302
    with app.app_context():
        assert db.session.get(Article, article_id).published_at.isoformat() == \
            "2026-11-29T09:05:00+00:00"
    preview = client.post("/admin/articles/preview", data={
        "csrf_token": token, "body": "*hi* <img src=x onerror=alert(1)>",
        "body_format": "markdown"})
    assert preview.status_code == 200
    assert "<body><p><em>hi</em>" in preview.get_data(as_text=True)
    assert "onerror" not in preview.get_data(as_text=True)
    # Its own policy: https images show in the preview, and only there.
    policy = preview.headers["Content-Security-Policy"]
    assert "img-src 'self' https: data:" in policy and "sandbox" in policy
    assert "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert "img-src 'self' data:;" in client.get("/admin/articles/new").headers[
        "Content-Security-Policy"]
    as_html = client.post("/admin/articles/preview", data={
        "csrf_token": token, "body": "*hi*", "body_format": "html"})
    assert "<body>*hi*</body>" in as_html.get_data(as_text=True)


def test_article_limits_are_errors_shown_together_and_nothing_is_cut(app, client):
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/articles/new")
    form = {"csrf_token": token, "title": "T" * 3000, "url": "https://news.example.com/long",
            "summary": "s" * 2001, "body_format": "markdown", "body": "b" * (200 * 1024 + 1),
            "published_at": "soon"}
    response = client.post("/admin/articles/new", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    for message in ("The title has 3000 characters; at most 500",
                    "The summary has 2001 characters; at most 2000",
                    "The body is 201 KB; at most 200 KB", "publication time"):
        assert message in page
    assert "T" * 3000 in page  # what was typed comes back to be fixed
    too_big = client.post("/admin/articles/preview", data={
        "csrf_token": token, "body": "b" * (200 * 1024 + 1)})
    assert too_big.status_code == 400 and "at most 200 KB" in too_big.get_data(as_text=True)
    too_deep = client.post("/admin/articles/preview", data={
        "csrf_token": token, "body": ">" * 10_000 + " x", "body_format": "markdown"})
    assert too_deep.status_code == 400 and "at most 100" in too_deep.get_data(as_text=True)
    deep_form = {**form, "title": "Deep", "summary": "", "published_at": "",
                 "body": "<ul>" * 10_000 + "x", "body_format": "html"}
    refused = client.post("/admin/articles/new", data=deep_form)
    assert refused.status_code == 400 and "at most 100 are allowed" in refused.get_data(
        as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Article.id))) == 0
    at_limit = {**form, "title": "T" * 500, "summary": "s" * 2000, "body": "b" * 200 * 1024,
                "published_at": ""}
    assert client.post("/admin/articles/new", data=at_limit).status_code == 302
    with app.app_context():
        assert len(db.session.scalar(select(Article.title))) == 500


def test_api_tokens_are_created_shown_once_and_revoked(app, client):
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/tokens")
    page = client.post("/admin/tokens", data={"csrf_token": token, "name": "CMS",
                                              "scope": "articles:write"})
    api_token = re.search(r'id="new-token">(nl_[^<]+)<', page.get_data(as_text=True)).group(1)
    for nameless in ("", " \t\r\n"):
        refused = client.post("/admin/tokens", data={"csrf_token": token, "name": nameless,
                                                     "scope": "articles:write"})
        assert "Give the token a name" in refused.get_data(as_text=True)
        assert 'id="new-token"' not in refused.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {api_token}"}
    article = {"title": "T", "url": "https://news.example.com/t"}
    assert client.post("/api/v1/articles", json=article, headers=headers).status_code == 201
    assert api_token not in client.get("/admin/tokens").get_data(as_text=True)
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert client.post("/api/v1/articles", json=article, headers=headers).status_code == 401


def test_schedule_an_issue_for_later(app, client, celery_worker, mailbox, monkeypatch):
    """Issue 9: the time is typed in the newsletter's zone, a mistake comes back with
    what was typed, the schedule asks first, and the issue stays editable."""
    monkeypatch.setitem(app.config, "DIGEST_SCHEDULE", "mon 08:00 Europe/Berlin")
    make_editor(app)
    login(client)
    add_subscribers(app, 2)
    add_article(app)
    token = csrf_token_from(client, "/admin/digests")
    typed = {"csrf_token": token, "subject": "Later", "headline": "Our big week",
             "intro": "Hello & welcome"}
    for send_date, send_time, message in [
            ("2020-01-01", "08:00", "Choose a time in the future"),
            ("soon", "08:00", "Enter the date as YYYY-MM-DD"),
            ("", "", "Enter the date and time"),
            ("2030-03-31", "02:30", "31 Mar 2030 02:30 does not exist in Europe/Berlin")]:
        refused = client.post("/admin/digests/schedule",
                              data={**typed, "send_date": send_date, "send_time": send_time})
        page = refused.get_data(as_text=True)
        assert refused.status_code == 400 and message in page
        assert 'value="Later"' in page and 'value="Our big week"' in page
        assert "Hello &amp; welcome</textarea>" in page

    later = datetime.now(UTC) + timedelta(days=2)
    local = later.astimezone(ZoneInfo("Europe/Berlin"))
    when = {"send_date": f"{local:%Y-%m-%d}", "send_time": f"{local:%H:%M}"}
    asked = client.post("/admin/digests/schedule", data={**typed, **when})
    assert "Send ‘Later’ to 2 readers?" in asked.get_data(as_text=True)
    assert f"{local:%d %b %Y %H:%M} Europe/Berlin" in asked.get_data(as_text=True)
    scheduled = client.post("/admin/digests/schedule", data={**typed, **when, "confirmed": "2"})
    assert scheduled.status_code == 302
    digest_id = int(scheduled.headers["Location"].rsplit("/", 1)[1])
    report = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert f"{local:%d %b %Y %H:%M} Europe/Berlin" in report
    assert f'value="{local:%Y-%m-%d}"' in report  # the edit form, in the zone too

    # Edited while scheduled: new words and an hour later; a bad time changes nothing.
    edit = f"/admin/digests/{digest_id}/edit"
    hour_later = (later + timedelta(hours=1)).astimezone(ZoneInfo("Europe/Berlin"))
    bad = client.post(edit, data={**typed, "subject": "Changed", "send_date": "2020-01-01",
                                  "send_time": "08:00"})
    assert bad.status_code == 400 and 'value="Changed"' in bad.get_data(as_text=True)
    saved = client.post(edit, data={**typed, "subject": "Changed", "headline": "",
                                    "send_date": f"{hour_later:%Y-%m-%d}",
                                    "send_time": f"{hour_later:%H:%M}"})
    assert saved.status_code == 302
    with app.app_context():
        digest = db.session.get(Digest, digest_id)
        assert (digest.subject, digest.headline, digest.intro) == (
            "Changed", None, "Hello & welcome")
        assert digest.send_at == hour_later.replace(second=0, microsecond=0)
    with app.app_context():
        assert digests.due_scheduled() == []  # not yet
        assert digests.new_articles() == []  # its articles are spoken for
        digest = db.session.get(Digest, digest_id)
        assert digest.status == DigestStatus.SCHEDULED
        digest.send_at = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
        goes_out = digest.send_at.astimezone(ZoneInfo("Europe/Berlin"))
        assert digests.due_scheduled() == [digest_id]
        with unit_of_work():  # what beat's task does every minute, for each due issue
            digests.start_send(digest_id)
    wait_until_sent(app, digest_id)
    received = mailbox.wait_for(2)
    assert {m["Subject"] for m in received} == {"Changed"}
    # No headline given: the site name and the day it went out, in the zone.
    html = received[0].get_body(("html",)).get_content()
    assert f">{app.config['SITE_NAME']}, {goes_out.day} {goes_out:%B %Y}</h1>" in html


def test_articles_can_be_left_out_from_the_compose_screen(app, client):
    make_editor(app)
    login(client)
    add_article(app)
    keep = add_article(app, "Another story", "https://news.example.com/another")
    token = csrf_token_from(client, "/admin/digests")
    response = client.post(f"/admin/articles/{keep}/exclude", data={
        "csrf_token": token, "exclude": "1", "back": "/admin/digests?subject=x"})
    assert response.headers["Location"] == "/admin/digests?subject=x"
    page = client.get("/admin/digests").get_data(as_text=True)
    assert "1 article in this issue" in page and "Another story" not in page
    evil = client.post(f"/admin/articles/{keep}/exclude", data={
        "csrf_token": token, "exclude": "0", "back": "https://evil.example/"})
    assert evil.headers["Location"] == "/admin/"


def test_readers_not_reached_show_on_the_report_and_their_page(app, client, celery_worker,
                                                               mailbox):
    """Issue 9: a failed delivery is visible, with the reason the server gave."""
    mailbox.rejected_recipients = {"reader1@example.com"}  # 550 5.1.1 at RCPT
    make_editor(app)
    login(client)
    ids = add_subscribers(app, 3)
    add_article(app)
    with app.app_context(), unit_of_work():
        digest = digests.send_now()
        digest_id = digest.id
    wait_until_sent(app, digest_id)
    report = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    section = report.split('id="not-reached"', 1)[1].split("</table>", 1)[0]
    assert "reader1@example.com" in section and "550 5.1.1 No such user here" in section
    assert "reader0@example.com" not in section and "reader2@example.com" not in section
    page = client.get(f"/admin/subscribers/{ids[1]}").get_data(as_text=True)
    deliveries = page.split('id="deliveries"', 1)[1].split("</table>", 1)[0]
    assert "failed" in deliveries and "550 5.1.1 No such user here" in deliveries
    assert f"/admin/digests/{digest_id}" in deliveries
    sent_page = client.get(f"/admin/subscribers/{ids[0]}").get_data(as_text=True)
    assert '<span class="pill sent">sent</span>' in sent_page
