"""The web edge under attack: bounds, body caps, security headers, tokens, dev pages."""

from __future__ import annotations

import csv
import io
import logging
import re
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter import create_app
from newsletter.config import ConfigError
from newsletter.db import unit_of_work
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.mail import tokens
from newsletter.models import (
    MailTemplate,
    OutboxMail,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
)
from newsletter.readers import privacy, subscriber_lists
from tests.factories import add_article, add_subscribers, make_editor, send_now
from tests.helpers import ROOT, app_config, csrf_token_from, login, wait_until, wait_until_sent


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def add_reader(app, email="reader@example.com", status=SubscriberStatus.ACTIVE, name=None):
    with app.app_context():
        reader = Subscriber(email=email, email_normalized=email, status=status, name=name)
        db.session.add(reader)
        db.session.commit()
        return reader.id, reader.unsubscribe_key, reader.token_nonce


def refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "newsletter.web.errors"]


# --- ids, JSON, body sizes ------------------------------------------------------------

@pytest.mark.parametrize("path", ["/archive/99999999999999999999", "/archive/2147483648",
                                  "/archive/0", "/archive/-1", "/archive/１２"])
def test_ids_beyond_the_database_range_are_404(app, client, caplog, path):
    caplog.set_level(logging.WARNING)
    response = client.get(path)
    assert response.status_code == 404
    [record] = refusals(caplog)  # logged once, as a warning with the reason
    assert record.levelno == logging.WARNING and "404" in record.getMessage()
    assert not record.exc_info


def test_editor_ids_and_pages_are_bounded_too(app, client):
    make_editor(app)
    login(client)
    assert client.get("/admin/digests/99999999999999999999").status_code == 404
    assert client.get("/admin/subscribers/2147483648/export.json").status_code == 404
    for page in ["99999999999999999999", "²", "-3", "١"]:
        assert client.get(f"/admin/subscribers?page={page}").status_code == 200


@pytest.mark.parametrize("body", [
    "[" * 5000 + "]" * 5000,  # RecursionError inside json, unless bounded
    '{"email": "a@example.com", "x": ' + "[" * 40 + "]" * 40 + "}",  # deeper than 32
])
def test_deeply_nested_json_is_a_400(app, client, caplog, body):
    caplog.set_level(logging.WARNING)
    response = client.post("/api/v1/subscriptions", data=body,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["status"] == 400 and response.get_json()["error"]
    assert len(refusals(caplog)) == 1
    assert count(app, Subscriber) == 0


@pytest.mark.parametrize("payload", [
    {"email": ["a@example.com"]}, {"email": {"$ne": None}}, {"email": True}, {"email": None},
    {"email": "a@example.com", "name": ["x"]}, {"email": "a@example.com", "name": 5},
    ["a@example.com"], "a@example.com", 5,
])
def test_wrong_json_types_are_a_400_with_a_json_error(app, client, payload):
    response = client.post("/api/v1/subscriptions", json=payload)
    assert response.status_code == 400 and response.is_json
    assert response.get_json()["error"]
    assert count(app, Subscriber) == 0


@pytest.mark.parametrize("host", ["a" * 64 + ".example", "a..b", "x:99999", "[::zz]",
                                  "b\u00fccher.example"])
def test_a_host_header_that_is_no_host_name_is_a_400_with_a_reason(app, client, host):
    for path, accept in [("/subscribe", "text/html"), ("/api/v1/topics", "application/json")]:
        response = client.get(path, headers={"Host": host, "Accept": accept})
        assert response.status_code == 400
        assert "The Host header is not a valid host name." in response.get_data(as_text=True)
        assert response.headers["Content-Security-Policy"]  # our own error page


def test_the_edges_400_pages_are_in_the_language_the_request_asks_for(app, client):
    app.config["LANGUAGES"] = ("en", "fr")
    french = {"Accept-Language": "fr-FR, fr;q=0.9"}
    bad_host = client.get("/subscribe", headers={"Host": "a..b", **french})
    assert bad_host.status_code == 400
    assert "L’en-tête Host n’est pas un nom d’hôte valide." in bad_host.get_data(as_text=True)
    nul = client.get("/subscribe?lang=fr&q=%00")
    assert nul.status_code == 400
    assert "La requête contient un caractère NUL." in nul.get_data(as_text=True)
    form = client.post("/subscribe?lang=fr", data={"email": "a\x00@example.com"})
    assert "La requête contient un caractère NUL." in form.get_data(as_text=True)
    english = client.get("/subscribe?q=%00", headers={"Accept-Language": "en"})
    assert "The request holds a NUL character." in english.get_data(as_text=True)
    # The API answers in English whatever the request asks for.
    api = client.get("/api/v1/topics?lang=fr", headers={"Host": "a..b", **french})
    assert api.get_json()["error"] == "The Host header is not a valid host name."


def test_a_host_forwarded_by_a_trusted_proxy_is_checked_too(app, clean_state):
    proxied = create_app(app_config(app.config["DATABASE_URL"], app.config["REDIS_URL"],
                                    app.config["SMTP_PORT"], PROXY_COUNT=1))
    client = proxied.test_client()
    refused = client.get("/subscribe", headers={"X-Forwarded-Host": "a" * 64 + ".example"})
    assert refused.status_code == 400 and "Host header" in refused.get_data(as_text=True)
    fine = client.get("/subscribe", headers={"X-Forwarded-Host": "news.example.com"})
    assert fine.status_code == 200


def test_public_bodies_are_capped_before_anything_parses_them(app, client):
    # The 32 MB "[{},{},...]" that used to cost ~690 MB to parse: refused unread.
    body = b"[" + b"{}," * (32 * 1024 * 1024 // 3) + b"{}]"
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        response = client.post("/api/v1/subscriptions", data=body,
                               content_type="application/json")
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert response.status_code == 413 and response.get_json()["status"] == 413
    print(f"peak allocation while refusing 32 MB: {peak / 2**20:.1f} MiB")
    assert peak < 8 * 2**20
    just_over = client.post("/api/v1/subscriptions", data=b" " * (16 * 1024 + 1),
                            content_type="application/json")
    assert just_over.status_code == 413
    form = client.post("/subscribe", data={"email": "a@example.com", "name": "x" * 17000})
    assert form.status_code == 413 and "<html" in form.get_data(as_text=True)
    assert count(app, Subscriber) == 0


def test_only_a_logged_in_editor_may_upload_a_large_file(app, client, celery_worker):
    rows = "".join(f"reader{n}@example.com,Reader {n}\n" for n in range(30000))
    data = ("email,name\n" + rows).encode()
    assert len(data) > 1024 * 1024
    anonymous = client.post("/admin/subscribers/import",
                            data={"file": (io.BytesIO(data), "list.csv")})
    assert anonymous.status_code == 413
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/subscribers/import")
    report = client.post("/admin/subscribers/import", data={
        "csrf_token": token, "action": "check", "file": (io.BytesIO(data), "list.csv")})
    assert report.status_code == 302  # accepted: a worker checks the file as a job
    job_id = int(report.headers["Location"].rsplit("/", 1)[1])

    def checked():
        with app.app_context():
            job = subscriber_lists.import_job(job_id)
            return job if job.status.value not in ("queued", "running") else None

    job = wait_until(checked, 60, "the worker to check the file", interval=0.2)
    assert job.valid == 30000
    # Other editor forms take an article's body, not an upload.
    big = client.post("/admin/articles/new", data={"csrf_token": token, "title": "T",
                                                   "url": "https://e.example/a",
                                                   "body_html": "x" * (2 * 1024 * 1024)})
    assert big.status_code == 413


# --- security headers -----------------------------------------------------------------

def policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in header.split("; ")}


def test_pages_carry_a_strict_policy_and_security_headers(app, client):
    page = client.get("/subscribe")
    csp = policy(page)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in page.headers  # BASE_URL is http here
    # The reader's form sets no cookie: its CSRF token is in the page.
    assert "Set-Cookie" not in page.headers
    stylesheet = client.get("/static/web.css")
    assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"
    for path in ["/api/v1/nothing", "/archive/", "/no/such/page"]:
        assert "frame-ancestors 'none'" in client.get(path).headers["Content-Security-Policy"]


def test_hsts_when_base_url_is_https(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "BASE_URL", "https://news.example.com")
    response = client.get("/subscribe")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_only_the_embed_form_may_be_framed_by_the_embed_origins(app, client, monkeypatch):
    assert policy(client.get("/subscribe?embed=1"))["frame-ancestors"] == "*"
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", ("https://site.example",
                                                      "https://www.site.example"))
    embed = client.get("/subscribe?embed=1")
    assert policy(embed)["frame-ancestors"] == "https://site.example https://www.site.example"
    assert "X-Frame-Options" not in embed.headers
    token = re.search(r'name="csrf_token" value="([^"]+)"', embed.get_data(as_text=True))[1]
    posted = client.post("/subscribe?embed=1", data={"email": "e@example.com",
                                                     "csrf_token": token})
    assert posted.status_code == 302
    assert posted.headers["Location"].endswith("/subscribe/thanks?embed=1")
    thanks = client.get("/subscribe/thanks?embed=1")
    assert policy(thanks)["frame-ancestors"] == "https://site.example https://www.site.example"
    # Without embed=1 the same pages refuse every frame.
    assert policy(client.get("/subscribe/thanks"))["frame-ancestors"] == "'none'"


def test_pages_with_tokens_or_personal_data_are_not_stored(app, client):
    reader_id, key, nonce = add_reader(app)
    with app.app_context():
        confirm = tokens.make_confirm_token(reader_id, nonce)
    for path in [f"/unsubscribe/{key}", f"/confirm/{confirm}", "/admin/login", "/subscribe"]:
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    assert "no-store" not in client.get("/archive/").headers.get("Cache-Control", "")


def test_the_archive_shows_mail_html_without_any_script(app, client, celery_worker, mailbox):
    add_subscribers(app, 1)
    add_article(app)
    digest_id = send_now(app)
    wait_until_sent(app, digest_id)
    page = client.get(f"/archive/{digest_id}")  # the issue inline, under the page policy
    assert page.status_code == 200 and policy(page)["style-src"] == "'self'"
    assert policy(page)["img-src"] == "'self' data: https:"  # the articles' images show
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    body = page.get_data(as_text=True)
    assert "Talks resume in Geneva" in body and " style=" not in body  # sanitised by nh3
    assert f'href="/archive/{digest_id}/mail"' in body  # the mail as sent, one click away
    response = client.get(f"/archive/{digest_id}/mail")
    assert response.status_code == 200 and "Talks resume in Geneva" in response.get_data(
        as_text=True)
    csp = policy(response)
    assert "script-src" not in csp and csp["default-src"] == "'none'"
    assert csp["style-src"] == "'unsafe-inline'" and "sandbox" in csp
    assert csp["frame-ancestors"] == "'self'"  # framed by the archive page only


def test_templates_hold_no_inline_script_or_style():
    """The CSP would block them: scripts and styles live in static/."""
    for path in sorted((ROOT / "templates").glob("*/*.html")):
        if path.parent.name == "email":
            continue
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert not re.search(r"<style|\sstyle=", text), path
        assert not re.search(r"\son[a-z]+=", text), path


# --- the subscribe form's token -------------------------------------------------------

def form_token(client, path="/subscribe", **kwargs) -> str:
    page = client.get(path, **kwargs).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def test_the_subscribe_form_token_is_signed_expiring_and_bound_to_the_client(
        app, client, monkeypatch):
    other_ip = {"REMOTE_ADDR": "203.0.113.9"}
    stolen = form_token(client, environ_base=other_ip)  # fetched by someone else
    refused = client.post("/subscribe", data={"email": "a@example.com", "csrf_token": stolen})
    assert refused.status_code == 400 and "form expired" in refused.get_data(as_text=True)
    forged = client.post("/subscribe", data={"email": "a@example.com",
                                             "csrf_token": stolen[:-2] + "xx"})
    assert forged.status_code == 400
    monkeypatch.setattr(tokens, "FORM_TOKEN_MAX_AGE", -1)
    expired = client.post("/subscribe", data={"email": "a@example.com",
                                              "csrf_token": form_token(client)})
    assert expired.status_code == 400
    assert count(app, SubscribeRequest) == 0  # nothing recorded for a worker to decide
    monkeypatch.setattr(tokens, "FORM_TOKEN_MAX_AGE", 3600)
    # A fresh client with no cookie at all (as in a cross-site iframe) subscribes.
    fresh = app.test_client(use_cookies=False)
    accepted = fresh.post("/subscribe", data={"email": "a@example.com",
                                              "csrf_token": form_token(fresh)})
    assert accepted.status_code == 302
    assert count(app, SubscribeRequest) == 1


def test_a_form_shown_before_a_key_rotation_still_submits_but_another_clients_does_not(
        app, client, caplog, monkeypatch):
    old_key = app.config["SECRET_KEY"]
    shown = form_token(client)
    monkeypatch.setitem(app.config, "SECRET_KEY", "a-new-secret-key-of-at-least-32-bytes")
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [old_key])
    sent = client.post("/subscribe", data={"email": "kept@example.com", "csrf_token": shown})
    assert sent.status_code == 302 and count(app, SubscribeRequest) == 1
    caplog.set_level(logging.WARNING)
    stolen = form_token(client, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    refused = client.post("/subscribe", data={"email": "a@example.com", "name": "Kept",
                                              "csrf_token": stolen})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Please send it again" in page
    assert 'value="a@example.com"' in page and 'value="Kept"' in page  # nothing lost
    [record] = refusals(caplog)
    assert "another client" in record.getMessage()
    assert count(app, SubscribeRequest) == 1


# --- tokens in links ------------------------------------------------------------------

def test_refused_requests_log_their_path_without_the_key_or_token(app, client, caplog):
    reader_id, key, nonce = add_reader(app)
    with app.app_context():
        confirm = tokens.make_confirm_token(reader_id, nonce)
        address = tokens.make_address_token(reader_id, nonce, "new@example.com")
    caplog.set_level(logging.WARNING)
    for path in [f"/unsubscribe/{key}/nope", f"/unsubscribe/{key}/preferences?x=%00",
                 f"/confirm/{confirm}/nope", f"/change-address/{address}?token={address}",
                 f"/unsubscribe/{key}/preferences/../../x", f"/invite/{confirm}"]:
        assert 400 <= client.get(path).status_code < 500, path
    text = caplog.text
    assert len(refusals(caplog)) == 6
    for secret in [key, confirm, address, confirm.rsplit(".", 1)[1]]:
        assert secret not in text
    assert text.count("[redacted]") >= 6


def test_every_route_holding_a_key_or_token_is_redacted(app):
    """A route added later with a token in its path is covered, or this fails."""
    from newsletter.logging_setup import redact

    secret = "Zq3" + "x" * 19 + "Q1_-"
    variables = re.compile(r"<(?:\w+:)?(\w*(?:token|key)\w*)>")
    rules = [rule.rule for rule in app.url_map.iter_rules() if variables.search(rule.rule)]
    assert len(rules) >= 8  # confirm, unsubscribe, preferences, change-address, invite
    for rule in rules:
        path = variables.sub(secret, re.sub(r"<int:\w+>", "1", rule))
        assert secret not in redact(f"GET {path!r} answered 404"), rule



def test_unsubscribe_links_carry_a_random_key_not_the_row_id(app, client):
    reader_id, key, _ = add_reader(app)
    other_id, other_key, _ = add_reader(app, "other@example.com")
    assert len(key) >= 22 and key != other_key  # 128 random bits, URL-safe
    with app.app_context():
        message = outbox._message(MailTemplate.WELCOME, db.session.get(Subscriber, reader_id))
    link = re.search(r"<(http[^>]+)>", message["List-Unsubscribe"])[1]
    assert link == f"http://localhost/unsubscribe/{key}"
    assert str(reader_id) not in link.rsplit("/", 1)[1] or str(reader_id) in key
    one_click = app.test_client().post(f"/unsubscribe/{key}",
                                       data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    with app.app_context():
        assert db.session.get(Subscriber, reader_id).status == SubscriberStatus.UNSUBSCRIBED
        assert db.session.get(Subscriber, other_id).status == SubscriberStatus.ACTIVE
    assert client.get(f"/unsubscribe/{key[:-1]}x").status_code in (400, 404)


def test_digest_unsubscribe_links_carry_the_key(app, client, celery_worker, mailbox):
    [reader_id] = add_subscribers(app, 1)
    add_article(app)
    wait_until_sent(app, send_now(app))
    [message] = mailbox.wait_for(1)
    with app.app_context():
        key = db.session.get(Subscriber, reader_id).unsubscribe_key
    assert message["List-Unsubscribe"] == f"<http://localhost/unsubscribe/{key}>"


def test_old_signed_id_links_still_unsubscribe_until_turned_off(app, client, monkeypatch):
    reader_id, _, _ = add_reader(app)
    with app.app_context():
        old = tokens.make_legacy_unsubscribe_token(reader_id)
    assert "." in old and client.get(f"/unsubscribe/{old}").status_code == 200
    monkeypatch.setitem(app.config, "LEGACY_UNSUBSCRIBE_LINKS", False)
    refused = app.test_client().post(f"/unsubscribe/{old}",
                                     data={"List-Unsubscribe": "One-Click"})
    assert refused.status_code == 400
    with app.app_context():
        assert db.session.get(Subscriber, reader_id).status == SubscriberStatus.ACTIVE
    monkeypatch.setitem(app.config, "LEGACY_UNSUBSCRIBE_LINKS", True)
    accepted = app.test_client().post(f"/unsubscribe/{old}",
                                      data={"List-Unsubscribe": "One-Click"})
    assert accepted.status_code == 200
    with app.app_context():
        assert db.session.get(Subscriber, reader_id).status == SubscriberStatus.UNSUBSCRIBED


def test_an_erased_readers_old_links_get_the_bad_link_page(app, client, caplog):
    active_id, active_key, _ = add_reader(app, "gone@example.com")
    pending_id, pending_key, nonce = add_reader(app, "never@example.com",
                                                status=SubscriberStatus.PENDING)
    with app.app_context():
        confirm = tokens.make_confirm_token(pending_id, nonce)
        legacy = tokens.make_legacy_unsubscribe_token(active_id)
        with unit_of_work():
            assert privacy.erase_subscriber(active_id) and privacy.erase_subscriber(pending_id)
    caplog.set_level(logging.WARNING)
    csrf = csrf_token_from(client, "/admin/login")
    for path in [f"/confirm/{confirm}", f"/unsubscribe/{active_key}", f"/unsubscribe/{legacy}",
                 f"/unsubscribe/{pending_key}"]:
        attempts = [client.get(path), client.post(path, data={"csrf_token": csrf})]
        if path.startswith("/unsubscribe/"):
            attempts.append(client.post(path, data={"List-Unsubscribe": "One-Click"}))
        for response in attempts:
            assert response.status_code == 400, path
            assert "This link" in response.get_data(as_text=True), response.get_data(
                as_text=True)
    for key in [active_key, legacy, pending_key]:
        again = client.post(f"/unsubscribe/{key}/resubscribe", data={"csrf_token": csrf})
        assert again.status_code == 400 and "This link" in again.get_data(as_text=True)
    assert count(app, OutboxMail) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "/\t/evil.example",
                                    "/%0a", "/\x00", "/\r\n/evil.example", "\\\\evil.example",
                                    "https://evil.example/", "/admin\x7f"])
def test_login_next_refuses_other_hosts_and_control_characters(app, client, target):
    make_editor(app)
    response = login(client, next_path="?" + f"next={target}".replace("%", "%25"))
    if "\x00" in target:  # a NUL anywhere in the query is refused outright
        assert response.status_code == 400
        return
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location in ("/admin/", "http://localhost/admin/") or (
        target == "/%0a" and location.endswith("/%0a")), location


# --- CSV export -----------------------------------------------------------------------

def test_csv_export_neutralises_formulas(app, client):
    names = ["=HYPERLINK(\"https://evil.example\",\"x\")", "+1+1", "-2", "@SUM(A1)", "\tx",
             "\rx", "Plain Name"]
    with app.app_context():
        for number, name in enumerate(names):
            db.session.add(Subscriber(email=f"r{number}@example.com",
                                      email_normalized=f"r{number}@example.com", name=name))
        db.session.add(Subscriber(email="=cmd|'/c calc'!A0@example.com",
                                  email_normalized="=cmd@example.com"))
        db.session.commit()
    make_editor(app)
    login(client)
    export = client.get("/admin/subscribers/export.csv")
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True), newline="")))
    exported = {row[1] for row in rows[1:]}
    assert exported >= {"'" + name for name in names[:-1]} | {"Plain Name"}
    assert "'=cmd|'/c calc'!A0@example.com" in {row[0] for row in rows}
    assert export.headers["Cache-Control"] == "no-store"


# --- /dev/mail ------------------------------------------------------------------------

def dev_app(database_url, redis_url, smtp_port, **settings):
    return create_app(app_config(database_url, redis_url, smtp_port, **settings))


def test_dev_mailbox_is_refused_outside_the_dev_stack(app, database_url, redis_url,
                                                      smtp_server, tmp_path):
    port = smtp_server.port
    for settings in [{"TESTING": False, "SECRET_KEY": "k" * 40},  # production: no debug
                     {"DEBUG": True, "BASE_URL": "https://news.example.com"},
                     {"DEBUG": True, "BASE_URL": "http://10.0.0.5:5000"}]:
        with pytest.raises(ConfigError, match="NEWSLETTER_DEV_MAILBOX"):
            dev_app(database_url, redis_url, port, DEV_MAILBOX=str(tmp_path), **settings)
    assert "/dev/mail/" not in {rule.rule for rule in app.url_map.iter_rules()}


def test_dev_mailbox_in_the_dev_stack_shows_mail_under_the_policy(
        app, clean_state, database_url, redis_url, smtp_server, tmp_path):
    sample = Path(tmp_path / "1700000000-1.eml")
    sample.write_bytes(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nHi there\r\n--b\r\nContent-Type: text/html\r\n\r\n"
        b"<p style=\"color:red\">Hi there</p><script>alert(1)</script>\r\n--b--\r\n")
    dev = dev_app(database_url, redis_url, smtp_server.port, DEBUG=True,
                  BASE_URL="http://127.0.0.1:5002", DEV_MAILBOX=str(tmp_path))
    client = dev.test_client()
    index = client.get("/dev/mail/")
    assert index.status_code == 200 and "Hello" in index.get_data(as_text=True)
    assert index.headers["Cache-Control"] == "no-store"
    shown = client.get("/dev/mail/1700000000-1")
    assert 'src="/dev/mail/1700000000-1/html"' in shown.get_data(as_text=True)
    assert "frame-src 'self'" in shown.headers["Content-Security-Policy"]
    html = client.get("/dev/mail/1700000000-1/html")
    csp = policy(html)
    assert "script-src" not in csp and csp["frame-ancestors"] == "'self'" and "sandbox" in csp
    assert client.get("/dev/mail/..%2f..%2fetc").status_code == 404
    assert client.get("/dev/mail/nothere/html").status_code == 404


# --- the migration --------------------------------------------------------------------

def test_migration_gives_existing_readers_distinct_random_keys(app, clean_state):
    """Readers who joined before 0004 get a key each on upgrade (SQLite and PostgreSQL)."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    with app.app_context():
        downgrade(revision="0004-1")
        try:
            with db.engine.begin() as connection:
                for number in range(2500):  # more than one chunk of the backfill
                    connection.execute(text(
                        "INSERT INTO subscribers (email, email_normalized, status, token_nonce, "
                        "created_at, updated_at) VALUES (:email, :email, 'active', 'n', "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"email": f"old{number}@e.org"})
        finally:
            upgrade()
        keys = db.session.scalars(select(Subscriber.unsubscribe_key)).all()
    assert len(keys) == 2500 and len(set(keys)) == 2500
    assert all(tokens.is_unsubscribe_key(key) and len(key) >= 22 for key in keys)
