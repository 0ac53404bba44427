"""Editor accounts an attacker cannot ride: revocable sessions, secrets that rotate,
roles on every route, scoped tokens, throttled logins, two factors, an audit log."""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

import pyotp
import pytest
import time_machine
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import func, select, update

from newsletter.config import DEFAULT_SECRET_KEY
from newsletter.db import unit_of_work
from newsletter.editors import accounts, two_factor
from newsletter.extensions import db
from newsletter.models import (
    ApiToken,
    AuditEvent,
    Delivery,
    Digest,
    EditorSession,
    OutboxMail,
    Role,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.readers import privacy
from newsletter.web import security
from tests.factories import add_editor, add_subscribers, make_editor, session_client
from tests.helpers import (
    PASSWORD,
    audit_rows,
    csrf_token_from,
    example_path,
    link_from,
    login,
    process_subscribe_requests,
    run,
)
from workers.tasks import run_import


@contextmanager
def settings(app, **values):
    """Change app settings for one test, and put them back."""
    previous = {key: app.config[key] for key in values}
    app.config.update(values)
    try:
        yield
    finally:
        app.config.update(previous)


def logged_in(response) -> bool:
    return not (response.status_code == 302 and "/admin/login" in response.headers["Location"])


# --- sessions ------------------------------------------------------------------------------

def test_a_cookie_copied_before_logout_is_refused_after_it(app, client):
    make_editor(app)
    login(client)
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    assert thief.get("/admin/").status_code == 200
    client.post("/admin/logout", data={"csrf_token": csrf_token_from(client, "/admin/")})
    assert not logged_in(thief.get("/admin/"))
    assert not logged_in(client.get("/admin/"))
    assert [e.action for e in audit_rows(app)] == ["login", "logout"]


def test_a_session_older_than_the_absolute_lifetime_is_refused_while_active(app, client):
    make_editor(app)
    login(client)
    assert client.get("/admin/").status_code == 200
    max_age = app.config["SESSION_MAX_AGE"]
    with app.app_context():
        # Busy all along (seen a second ago), but started longer ago than the lifetime.
        db.session.execute(update(EditorSession).values(
            created_at=utcnow() - timedelta(seconds=max_age + 60),
            last_seen_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert not logged_in(client.get("/admin/"))


def test_an_idle_session_ends_and_polling_does_not_keep_it_alive(app, client):
    make_editor(app)
    login(client)
    idle = app.config["SESSION_IDLE_TIMEOUT"]
    with app.app_context():
        digest = Digest(subject="s")
        db.session.add(digest)
        db.session.commit()
        digest_id = digest.id
        nearly = utcnow() - timedelta(seconds=idle - 5)
        db.session.execute(update(EditorSession).values(last_seen_at=nearly))
        db.session.commit()
    # The progress page polls by itself: answered, but it is not activity.
    assert client.get(f"/admin/digests/{digest_id}/progress").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(EditorSession.last_seen_at)) == nearly
    with time_machine.travel(utcnow() + timedelta(seconds=6), tick=True):  # the idle end
        assert not logged_in(client.get(f"/admin/digests/{digest_id}/progress"))


def test_log_out_all_sessions_ends_every_one(app, client):
    make_editor(app)
    login(client)
    laptop = app.test_client()
    login(laptop)
    assert laptop.get("/admin/").status_code == 200
    token = csrf_token_from(client, "/admin/account")
    ended = client.post("/admin/account/sessions/end-all", data={"csrf_token": token},
                        follow_redirects=True)
    assert "Logged out of 2 session(s)" in ended.get_data(as_text=True)
    assert not logged_in(laptop.get("/admin/")) and not logged_in(client.get("/admin/"))


def test_login_starts_from_an_empty_session(app, client):
    make_editor(app)
    with client.session_transaction() as session:
        session["_user_id"] = "999"  # planted by an attacker before the login (fixation)
        session["planted"] = "x"
    login(client)
    with client.session_transaction() as session:
        assert "planted" not in session and session["_user_id"] != "999"


def forged_cookie(secret_key: str, payload: dict) -> str:
    forger = Flask("forger")
    forger.secret_key = secret_key
    return SecureCookieSessionInterface().get_signing_serializer(forger).dumps(payload)


def test_forged_session_cookies_are_refused(app, client):
    make_editor(app)
    with app.app_context():
        editor_id = accounts.find_editor("editor@example.com").id
    # Signed with the public default key: the signature does not verify.
    client.set_cookie("session", forged_cookie(DEFAULT_SECRET_KEY,
                                               {"_user_id": str(editor_id), "_fresh": True}))
    assert not logged_in(client.get("/admin/"))
    # Even signed with the real key, a cookie naming no live session opens nothing.
    client.set_cookie("session", forged_cookie(app.config["SECRET_KEY"], {
        "_user_id": str(editor_id), "_fresh": True, "sk": "guessed"}))
    assert not logged_in(client.get("/admin/"))


# --- secrets -------------------------------------------------------------------------------

def test_rotating_the_secret_key_keeps_sessions_links_and_suppression(app, client):
    from newsletter.mail.tokens import make_legacy_unsubscribe_token

    make_editor(app)
    login(client)
    old, new = app.config["SECRET_KEY"], "a-brand-new-secret-key-of-more-than-32-bytes"
    add_subscribers(app, 2)
    with app.app_context():
        reader, gone = db.session.scalars(select(Subscriber).order_by(Subscriber.id)).all()
        # Links carry a random key (independent of SECRET_KEY); mails sent before the
        # keys existed carry the signed id, which needs the old key among the fallbacks.
        link = f"/unsubscribe/{reader.unsubscribe_key}"
        legacy_link = f"/unsubscribe/{make_legacy_unsubscribe_token(reader.id)}"
        gone_address, gone_id = gone.email_normalized, gone.id
        # An erasure from before the pepper existed: its hash was keyed with SECRET_KEY.
        gone.email_normalized = privacy.legacy_suppression_keys(gone_address)[0]
        db.session.commit()
    with settings(app, SECRET_KEY=new):  # rotated without keeping the old key: all fail
        copy = app.test_client()
        copy.set_cookie("session", client.get_cookie("session").value)
        assert not logged_in(copy.get("/admin/"))
        assert "Unsubscribe" not in copy.get(legacy_link).get_data(as_text=True)
        assert "Unsubscribe" in copy.get(link).get_data(as_text=True)
    with settings(app, SECRET_KEY=new, SECRET_KEY_FALLBACKS=[old]):
        assert client.get("/admin/").status_code == 200
        assert "Unsubscribe" in client.get(link).get_data(as_text=True)
        assert "Unsubscribe" in client.get(legacy_link).get_data(as_text=True)
        client.post("/api/v1/subscriptions", json={"email": gone_address})
        process_subscribe_requests(app)
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 2
            # Seen again, the legacy hash was re-keyed with the suppression pepper.
            assert db.session.get(Subscriber, gone_id).email_normalized == (
                privacy.suppression_key(gone_address))
    with settings(app, SECRET_KEY=new):  # the pepper does not rotate with the key
        client.post("/api/v1/subscriptions", json={"email": gone_address})
        process_subscribe_requests(app)
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 2


@pytest.mark.parametrize("environment, message", [
    ({"FLASK_DEBUG": "1"}, "NEWSLETTER_SECRET_KEY is not set"),
    ({"FLASK_DEBUG": "1", "NEWSLETTER_SECRET_KEY": "0123456789"},
     "NEWSLETTER_SECRET_KEY is 10 bytes"),
])
def test_the_app_refuses_to_start_with_a_weak_key_even_in_debug(environment, message,
                                                                tmp_path):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("NEWSLETTER_", "FLASK_"))}
    # An instance folder of its own: the checkout's may hold the dev stack's keys.
    env["NEWSLETTER_INSTANCE_PATH"] = str(tmp_path)
    result = run(sys.executable, "-m", "flask", "--app", "newsletter", "routes",
                 env={**env, **environment}, timeout=60)
    assert result.returncode != 0 and message in result.stderr


# --- roles ---------------------------------------------------------------------------------

OWNER, EDITOR, AUTHOR = Role.OWNER, Role.EDITOR, Role.AUTHOR
# Every /admin and /api route, and who may use it. A new route fails this test until
# it declares a role (or scope) and is listed here.
EXPECTED = {
    "admin.login": "public", "admin.login_second_factor": "public",
    "admin.accept_invite": "public",
    "admin.logout": "any", "admin.account": "any", "admin.enable_two_factor": "any",
    "admin.disable_two_factor": "any", "admin.end_all_sessions": "any",
    "admin.articles_page": AUTHOR, "admin.edit_article": AUTHOR,
    "admin.exclude_article": AUTHOR, "admin.fetch_feeds": AUTHOR,
    "admin.preview_article": AUTHOR,
    "admin.dashboard": EDITOR, "admin.digests_page": EDITOR, "admin.send_digest": EDITOR,
    "admin.schedule_digest": EDITOR, "admin.send_test_digest": EDITOR,
    "admin.digest_report": EDITOR, "admin.digest_progress": EDITOR,
    "admin.digest_clicks_csv": EDITOR,
    "admin.digest_preview": EDITOR, "admin.edit_digest": EDITOR, "admin.bounce_resume": OWNER,
    "admin.bounces_page": OWNER, "admin.bounce_raw_message": OWNER,
    "admin.bounce_reactivate": OWNER,
    "admin.settings_page": OWNER, "admin.settings_save": OWNER,
    "admin.settings_preview_mail": OWNER, "admin.settings_logo": OWNER,
    "admin.control_digest": EDITOR, "admin.start_digest": EDITOR,
    "admin.subscribers_page": EDITOR,
    "admin.import_subscribers": EDITOR, "admin.import_job": EDITOR,
    "admin.subscriber_page": EDITOR, "admin.add_subscriber": EDITOR,
    "admin.edit_subscriber": EDITOR, "admin.unsubscribe_subscriber": EDITOR,
    "admin.resend_confirmation": EDITOR,
    "admin.tokens_page": OWNER, "admin.revoke_token": OWNER, "admin.editors_page": OWNER,
    "admin.change_editor_role": OWNER, "admin.remove_editor": OWNER,
    "admin.audit_page": OWNER, "admin.export_subscribers": OWNER,
    "admin.export_subscriber": OWNER, "admin.erase_subscriber": OWNER,
    "api.create_subscription": "public", "api.create_article": "articles:write",
    "api.create_issue": "issues:send", "api.list_subscribers": "subscribers:read",
    "api.unsubscribe_subscriber": "subscribers:write",
    "api.list_topics": "public", "api.get_preferences": "subscribers:read",
    "api.put_preferences": "subscribers:write",
    "admin.topics_page": EDITOR, "admin.topic_create": EDITOR,
    "admin.topic_edit": EDITOR, "admin.topic_move": EDITOR,
    "admin.topic_delete": EDITOR, "admin.topics_from_categories": EDITOR,
    "admin.sequences_page": EDITOR, "admin.sequence_create": EDITOR,
    "admin.sequence_page": EDITOR, "admin.sequence_add_step": EDITOR,
    "admin.sequence_step_edit": EDITOR, "admin.sequence_step_move": EDITOR,
    "admin.sequence_step_preview": EDITOR, "admin.sequence_step_test": EDITOR,
    "admin.sequence_window": EDITOR,
    "api.list_sequences": "sequences:read",
    "admin.webhooks_page": OWNER, "admin.webhook_log": OWNER, "admin.webhook_resend": OWNER,
    "admin.webhook_enable": OWNER, "admin.webhook_remove": OWNER,
    "api.list_webhooks": "webhooks:read", "api.create_webhook": "webhooks:write",
    "admin.segments_page": EDITOR, "admin.segment_count": EDITOR,
    "admin.segment_create": EDITOR, "admin.segment_delete": EDITOR,
    "api.list_segments": "issues:send", "api.create_segment": "issues:send",
}


def guarded_rules(app, prefix: str):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(prefix)]


def test_every_route_declares_who_may_use_it(app):
    for rule in guarded_rules(app, "/admin") + guarded_rules(app, "/api"):
        assert rule.endpoint in EXPECTED, f"{rule.rule} has no role in the role matrix"
        view = app.view_functions[rule.endpoint]
        declared = getattr(view, "allowed_role", None) or getattr(view, "required_scope", None)
        assert declared == EXPECTED[rule.endpoint], rule.rule


def test_role_matrix_every_admin_route_for_every_role(app, client):
    ids = {role: add_editor(app, f"{role.value}@example.com", role.value)
           for role in (OWNER, EDITOR, AUTHOR)}
    checked = 0
    for rule in guarded_rules(app, "/admin"):
        needed = EXPECTED[rule.endpoint]
        if needed == "public":
            continue
        for role, editor_id in ids.items():
            allowed = needed == "any" or role.allows(needed)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                user = session_client(app, editor_id)
                token = csrf_token_from(user, "/admin/account")
                response = user.open(example_path(rule), method=method,
                                     data={"csrf_token": token} if method == "POST" else None)
                response.close()  # a streamed export keeps its request context open until then
                where = (role.value, method, rule.rule, response.status_code)
                leaving = rule.endpoint in {"admin.logout", "admin.end_all_sessions"}
                assert logged_in(response) or leaving, where
                assert (response.status_code == 403) is (not allowed), where
                checked += 1
    assert checked > 90
    denied = audit_rows(app, action="access", outcome="denied")
    assert {e.actor for e in denied} == {"editor@example.com", "author@example.com"}


def test_role_matrix_every_api_endpoint_for_every_scope(app, client):
    make_editor(app)  # the first editor is an owner: every scope is open to it
    tokens = {}
    with app.app_context(), unit_of_work():
        for scope in accounts.SCOPES:
            tokens[scope], _ = accounts.create_api_token("editor@example.com", scope, [scope])
    for rule in guarded_rules(app, "/api"):
        needed = EXPECTED[rule.endpoint]
        if needed == "public":
            continue
        path, method = example_path(rule), sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        assert client.open(path, method=method, json={}).status_code == 401
        for scope, token in tokens.items():
            response = client.open(path, method=method, json={},
                                   headers={"Authorization": f"Bearer {token}"})
            if scope == needed:
                assert response.status_code not in (401, 403), (scope, rule.rule)
            else:
                assert response.status_code == 403, (scope, rule.rule)
                assert response.get_json()["missing_scope"] == needed
                assert needed in response.get_json()["error"]


def test_an_author_cannot_send_erase_or_export_and_is_recorded(app, client):
    make_editor(app)
    add_editor(app, "author@example.com", "author")
    add_subscribers(app, 1)
    login(client, "author@example.com")
    token = csrf_token_from(client, "/admin/articles")
    with app.app_context():
        subscriber_id = db.session.scalar(select(Subscriber.id))
    assert client.post(f"/admin/subscribers/{subscriber_id}/erase",
                       data={"csrf_token": token, "confirm": "yes"}).status_code == 403
    assert client.get("/admin/subscribers/export.csv").status_code == 403
    assert client.post("/admin/digests/send", data={"csrf_token": token}).status_code == 403
    page = client.get("/admin/articles").get_data(as_text=True)
    assert "Subscribers" not in page and "Digests" not in page
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id).status == SubscriberStatus.ACTIVE
    assert len(audit_rows(app, action="access", outcome="denied")) == 3


def test_cli_creates_editors_with_roles_and_the_first_is_an_owner(app, client):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["editors", "create", "boss@example.com", "--role", "author",
                                "--password", PASSWORD])
    assert "(owner)" in first.output
    second = runner.invoke(args=["editors", "create", "pen@example.com", "--role", "author",
                                 "--password", PASSWORD])
    assert "(author)" in second.output
    bad = runner.invoke(args=["editors", "create", "x@example.com", "--role", "king",
                              "--password", PASSWORD])
    assert bad.exit_code != 0 and "king" in bad.output
    # The README's way: one password line piped in (no confirmation line needed).
    piped = runner.invoke(args=["editors", "create", "piped@example.com"],
                          input=PASSWORD + "\n")
    assert piped.exit_code == 0 and "(editor)" in piped.output, piped.output
    empty = runner.invoke(args=["editors", "create", "empty@example.com"], input="\n")
    assert empty.exit_code != 0


def test_owner_invites_an_editor_whose_link_sets_the_password_once(app, client,
                                                                   celery_worker, mailbox):
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/editors")
    client.post("/admin/editors", data={"csrf_token": token, "email": "new@example.com",
                                        "role": "author"})
    [mail] = mailbox.wait_for(1)
    assert mail["To"] == "new@example.com"
    link = link_from(mail, "/admin/invite/")
    path = link.split("localhost", 1)[1]
    assert login(app.test_client(), "new@example.com").status_code == 401  # no password yet
    visitor = app.test_client()
    form = {"csrf_token": csrf_token_from(visitor, path), "password": "a new long password",
            "confirm": "a new long password"}
    assert visitor.post(path, data=form).status_code == 302
    assert visitor.get(path).status_code == 404  # used: the link works once
    new = app.test_client()
    assert login(new, "new@example.com", "a new long password").status_code == 302
    assert new.get("/admin/articles").status_code == 200
    assert new.get("/admin/").status_code == 403  # an author


def test_the_last_owner_cannot_step_down_and_removal_ends_access(app, client):
    make_editor(app)
    other = add_editor(app, "other@example.com", "editor")
    login(client)
    victim = app.test_client()
    login(victim, "other@example.com")
    token = csrf_token_from(client, "/admin/editors")
    with app.app_context():
        owner_id = accounts.find_editor("editor@example.com").id
    page = client.post(f"/admin/editors/{owner_id}/role", data={
        "csrf_token": token, "role": "editor"}, follow_redirects=True)
    assert "last owner" in page.get_data(as_text=True)
    client.post(f"/admin/editors/{other}/remove", data={"csrf_token": token})
    assert not logged_in(victim.get("/admin/"))
    assert login(app.test_client(), "other@example.com").status_code == 401
    assert [e.outcome for e in audit_rows(app, action="role_change")] == ["failed"]
    # The audit trail of the removed editor is still there.
    assert [e.actor for e in audit_rows(app, action="login", outcome="ok")] == [
        "editor@example.com", "other@example.com"]


# --- API tokens ----------------------------------------------------------------------------

def test_cli_token_contract_scopes_expiry_and_last_use(app, client):
    make_editor(app)
    result = app.test_cli_runner().invoke(args=[
        "editors", "token", "editor@example.com", "--name", "CMS", "--scope", "articles:write",
        "--scope", "subscribers:read", "--expires", "30"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"nl_[A-Za-z0-9_-]{40,}", token)
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.9"}
    article = {"title": "T", "url": "https://news.example.com/t"}
    assert client.post("/api/v1/articles", json=article, headers=headers).status_code == 201
    assert client.get("/api/v1/subscribers", headers=headers).status_code == 200
    denied = client.post("/api/v1/issues", json={}, headers=headers)
    assert denied.status_code == 403
    assert denied.get_json()["missing_scope"] == "issues:send"
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert row.last_used_at is not None and row.last_used_ip == "127.0.0.1"
        assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    expired = client.post("/api/v1/articles", json=article, headers=headers)
    assert expired.status_code == 401 and "expired" in expired.get_json()["error"]
    assert [e.detail for e in audit_rows(app, outcome="denied")] == [
        "this token lacks the scope issues:send", "this token has expired"]
    login(client)
    page = client.get("/admin/tokens").get_data(as_text=True)
    assert "expired" in page and "from 127.0.0.1" in page
    bad = app.test_cli_runner().invoke(args=["editors", "token", "editor@example.com",
                                             "--scope", "everything"])
    assert bad.exit_code != 0


def test_a_token_cannot_outgrow_its_editors_role(app, client):
    make_editor(app)
    add_editor(app, "pen@example.com", "author")
    with app.app_context(), pytest.raises(accounts.EditorError, match="author cannot hold"):
        accounts.create_api_token("pen@example.com", "x", ["issues:send"])
    add_editor(app, "ed@example.com", "editor")
    with app.app_context(), unit_of_work():
        token, _ = accounts.create_api_token("ed@example.com", "x", ["issues:send"])
        accounts.change_role(accounts.find_editor("ed@example.com").id, "author")
    denied = client.post("/api/v1/issues", json={}, headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403 and denied.get_json()["missing_scope"] == "issues:send"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0


# --- audit log -----------------------------------------------------------------------------

def test_the_audit_log_records_and_filters_and_cannot_be_changed(app, client):
    make_editor(app)
    login(client, password="wrong password")
    login(client)
    add_subscribers(app, 1)
    token = csrf_token_from(client, "/admin/")
    client.get("/admin/subscribers/export.csv").get_data()
    client.post("/admin/digests/send", data={"csrf_token": token})
    actions = [(e.action, e.outcome) for e in audit_rows(app)]
    assert actions[:3] == [("login", "failed"), ("login", "ok"), ("export", "ok")]
    page = client.get("/admin/audit?action=login&outcome=failed").get_data(as_text=True)
    table = page.split('id="audit"')[1]
    assert table.count("<tr>") == 2 and "failed" in table  # header + the one failure
    assert "127.0.0.1" in table
    with app.app_context():
        event = db.session.scalar(select(AuditEvent))
        event.action = "nothing happened"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalar(select(AuditEvent)))
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()


# --- login throttling ----------------------------------------------------------------------

def test_failed_logins_back_off_per_account_and_warn_the_editor(app, client, celery_worker,
                                                                mailbox):
    make_editor(app)
    with settings(app, LOGIN_FREE_ATTEMPTS=3, LOGIN_ALERT_AFTER=3):
        # Three failures from one network (fresh clients: no session or device to go by).
        statuses = [login(app.test_client(), password="wrong password").status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 401]
        blocked = login(client)  # even the right password waits now
        assert blocked.status_code == 429
        assert "Try again in 1 s" in blocked.get_data(as_text=True)
        unknown = [login(client, email="nobody@example.com").status_code for _ in range(4)]
        assert unknown == [401, 401, 401, 429]  # the same for an address that is no editor
        [alert] = mailbox.wait_for(1)
        assert alert["To"] == "editor@example.com" and "Failed logins" in alert["Subject"]
        with time_machine.travel(utcnow() + timedelta(seconds=1.1), tick=True):  # backoff over
            assert login(client).status_code == 302
    assert audit_rows(app, outcome="throttled")


def login_from(client, address: str, password: str = PASSWORD):
    token = csrf_token_from(client, "/admin/login")
    return client.post("/admin/login", environ_base={"REMOTE_ADDR": address}, data={
        "email": "editor@example.com", "password": password, "csrf_token": token})


GUESSING, HOME = "198.51.100.7", "203.0.113.5"


def test_guessing_from_one_network_never_locks_the_owner_out(app, client):
    make_editor(app)  # the first editor: an owner
    attacker, owner = app.test_client(), app.test_client()
    # The per-network limit over all accounts counts in Redis's own time, which the
    # clock here does not move: raised, so only the account backoff is tested.
    with (settings(app, LOGIN_RATE_LIMIT="100 per minute"),
          time_machine.travel(utcnow(), tick=True) as clock):
        wrong = []
        for _ in range(8):  # each after its backoff: eight failures counted
            wrong.append(login_from(attacker, GUESSING, "wrong password").status_code)
            clock.shift(timedelta(seconds=10))
        assert wrong == [401] * 8
        clock.shift(timedelta(seconds=-10))  # the next try is within the backoff
        # The guessing network waits, even with the right password ...
        assert login_from(attacker, GUESSING).status_code == 429
        # ... the owner, from another network, does not; and their login frees nobody.
        assert login_from(owner, HOME).headers.get("Location") == "/admin/"
        assert login_from(app.test_client(), GUESSING).status_code == 429
        # One guess an hour keeps the guessing network waiting, never the owner.
        clock.shift(timedelta(hours=1))
        assert login_from(attacker, GUESSING, "wrong password").status_code == 401
        assert login_from(attacker, GUESSING).status_code == 429
        # On the guessing network itself, the owner's browser is a known device.
        assert login_from(owner, GUESSING).headers.get("Location") == "/admin/"
        forged = app.test_client()
        forged.set_cookie("newsletter_device", "eyJhIjoiMCIsImQiOiIwIn0.forged.sig",
                          path="/admin/login")
        assert login_from(forged, GUESSING).status_code == 429
    assert len(audit_rows(app, action="login", outcome="ok")) == 2


def test_the_network_limit_counts_an_ipv6_64_as_one_client(app, client):
    make_editor(app)
    statuses = []
    for n in range(11):
        token = csrf_token_from(client, "/admin/login")
        statuses.append(client.post("/admin/login", data={
            "email": f"guess{n}@example.com", "password": "x", "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"2001:db8:5:7::{n + 1:x}"}).status_code)
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    token = csrf_token_from(client, "/admin/login")
    other_network = client.post("/admin/login", data={
        "email": "guess@example.com", "password": "x", "csrf_token": token},
        environ_base={"REMOTE_ADDR": "2001:db8:5:8::1"})
    assert other_network.status_code == 401


# --- two-factor login ----------------------------------------------------------------------

def enrol(app, email="editor@example.com") -> tuple[str, list[str]]:
    with app.app_context():
        editor = accounts.find_editor(email)
        secret = two_factor.new_secret()
        codes = two_factor.enrol(editor, secret, pyotp.TOTP(secret).now())
        # The enrolment used this step's code; let the test log in with the next one.
        editor.totp_last_step -= 1
        db.session.commit()
    return secret, codes


def verify(client, code: str):
    token = csrf_token_from(client, "/admin/login/verify")
    return client.post("/admin/login/verify", data={"code": code, "csrf_token": token})


def test_two_factor_login_codes_are_single_use(app, client):
    make_editor(app)
    secret, codes = enrol(app)
    assert len(codes) == 10 and len(set(codes)) == 10
    step = login(client)
    assert step.headers["Location"] == "/admin/login/verify"
    assert not logged_in(client.get("/admin/"))  # the password alone opens nothing
    assert verify(client, "000000").status_code == 401
    expired = pyotp.TOTP(secret).at(time.time() - 90)  # three steps old
    assert verify(client, expired).status_code == 401
    code = pyotp.TOTP(secret).now()
    assert verify(client, code).status_code == 302
    assert client.get("/admin/").status_code == 200

    replay = app.test_client()
    login(replay)
    assert verify(replay, code).status_code == 401  # a seen code is spent
    assert verify(replay, codes[0]).status_code == 302
    reuse = app.test_client()
    login(reuse)
    assert verify(reuse, codes[0]).status_code == 401
    with app.app_context():
        assert two_factor.recovery_codes_left(accounts.find_editor("editor@example.com").id) == 9
    outcomes = [(e.action, e.outcome) for e in audit_rows(app) if e.action == "login_2fa"]
    assert outcomes == [("login_2fa", "failed")] * 4


def test_a_pending_second_factor_expires(app, client):
    make_editor(app)
    secret, _ = enrol(app)
    login(client)
    with client.session_transaction() as session:
        session["pending_login"] = {**session["pending_login"],
                                    "at": session["pending_login"]["at"] - 301}
    late = client.get("/admin/login/verify")
    assert late.headers["Location"] == "/admin/login"
    assert not logged_in(client.get("/admin/"))


def test_mandatory_two_factor_forces_enrolment(app, client):
    make_editor(app)
    with settings(app, REQUIRE_TWO_FACTOR=True):
        assert login(client).headers["Location"] == "/admin/account"
        assert client.get("/admin/subscribers").headers["Location"] == "/admin/account"
        page = client.get("/admin/account").get_data(as_text=True)
        # The QR code is an SVG drawn by the server: no inline script (the CSP allows none).
        assert "<svg" in page and not re.search(r"<script(?![^>]*\bsrc=)", page)
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
        with client.session_transaction() as session:
            assert secret not in str(dict(session))  # derived on the server, not carried
        token = csrf_token_from(client, "/admin/account")
        wrong = client.post("/admin/account/2fa/enable", data={"csrf_token": token,
                                                               "code": "123456"})
        assert wrong.status_code == 302
        done = client.post("/admin/account/2fa/enable", data={
            "csrf_token": token, "code": pyotp.TOTP(secret).now()})
        codes = done.get_data(as_text=True).split('id="recovery-codes">')[1].split("</pre>")[0]
        assert len(re.findall(r"\b[a-z2-9]{5}-[a-z2-9]{5}\b", codes)) == 10
        assert client.get("/admin/subscribers").status_code == 200
        refused = client.post("/admin/account/2fa/disable", data={"csrf_token": token,
                                                                   "code": "x"})
        assert refused.status_code == 302
    with app.app_context():  # stored sealed, never as the secret itself
        stored = accounts.find_editor("editor@example.com").totp_secret
        assert stored and secret not in stored
    assert [e.outcome for e in audit_rows(app) if e.action.startswith("2fa")] == [
        "failed", "ok", "denied"]


# --- erasure -------------------------------------------------------------------------------

def test_erasure_removes_smtp_replies_that_quote_the_address(app, client):
    make_editor(app)
    add_subscribers(app, 1)
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        digest = Digest(subject="s")
        db.session.add(digest)
        db.session.flush()
        db.session.add(Delivery(digest_id=digest.id, subscriber_id=subscriber.id,
                                last_error=f"550 <{subscriber.email}>: no such user"))
        db.session.add(OutboxMail(subscriber_id=subscriber.id, template="welcome",
                                  last_error=f"452 {subscriber.email} over quota"))
        db.session.commit()
        subscriber_id, address = subscriber.id, subscriber.email
    login(client)
    export = client.get(f"/admin/subscribers/{subscriber_id}/export.json").get_json()
    assert address in export["digests"][0]["last_error"]
    assert address in export["mails"][0]["last_error"]
    token = csrf_token_from(client, f"/admin/subscribers/{subscriber_id}")
    client.post(f"/admin/subscribers/{subscriber_id}/erase", data={"csrf_token": token,
                                                                   "confirm": "yes"})
    with app.app_context():
        assert db.session.scalar(select(Delivery.last_error)) is None
        assert db.session.scalar(select(OutboxMail.last_error)) is None
    assert [e.target for e in audit_rows(app, action="erase")] == [
        f"subscriber {subscriber_id}"]


def test_an_upload_nobody_confirmed_is_deleted_after_an_hour(app, client):
    from newsletter.readers import subscriber_lists

    with app.app_context():
        fresh = subscriber_lists.keep_upload(b"email\nada@example.com\n")
        stale = subscriber_lists.keep_upload(b"email\nbob@example.com\n")
        folder = subscriber_lists._uploads()
        hour_ago = time.time() - subscriber_lists.UPLOAD_MAX_AGE - 1
        os.utime(folder / f"{stale}.csv", (hour_ago, hour_ago))
        assert subscriber_lists.read_upload(stale) is None  # too old to confirm
        os.utime(folder / f"{fresh}.csv", (hour_ago, hour_ago))
        assert subscriber_lists.discard_stale_uploads() == 1
        assert not list(folder.glob(f"{fresh}.csv")) and not list(folder.glob(f"{stale}.csv"))


# --- imports as a job ----------------------------------------------------------------------

def test_an_import_without_consent_owes_confirmations_paced_at_send_rate(app, client,
                                                                          celery_worker,
                                                                          mailbox):
    make_editor(app)
    rows = "".join(f"new{n}@example.com,New {n}\n" for n in range(5))
    with settings(app, SEND_RATE=2.0):
        result = app.test_cli_runner().invoke(
            args=["subscribers", "import", "-"], input="email,name\n" + rows + "bad,\n")
    assert result.exit_code == 0, result.output
    assert "added 5, duplicates 0, invalid 1" in result.output
    from newsletter.delivery import outbox

    with app.app_context():
        assert set(db.session.scalars(select(Subscriber.status))) == {SubscriberStatus.PENDING}
        due = db.session.scalars(select(OutboxMail.requested_at).order_by(OutboxMail.id)).all()
        gaps = [(due[n + 1] - due[n]).total_seconds() for n in range(len(due) - 1)]
        assert gaps == [0.5] * 4  # one confirmation every 1/SEND_RATE seconds
        assert outbox.enqueue_owed() == 0  # none due yet: the sweep publishes them in turn
        for mail in db.session.scalars(select(OutboxMail)):
            mail.requested_at -= timedelta(minutes=5)
        db.session.commit()
        assert outbox.enqueue_owed() == 5
    mails = mailbox.wait_for(5)
    assert {m["To"].addresses[0].username for m in mails} == {f"new{n}" for n in range(5)}
    assert [e.action for e in audit_rows(app)] == ["import"]


def test_the_import_request_returns_before_the_work_and_the_job_reports_progress(
        app, client, monkeypatch):
    from newsletter import queue
    from newsletter.models import ImportJob, ImportStatus
    from newsletter.readers import subscriber_lists

    # Hold the task back (a worker may be running in this session) to show that the
    # request answers with the work still undone; this test then runs the job itself.
    held = []
    monkeypatch.setattr(queue, "send_task_now", lambda name, *args: held.append((name, args)))
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/subscribers/import")
    data = "email\n" + "".join(f"r{n}@example.com\n" for n in range(2500))
    import io

    response = client.post("/admin/subscribers/import", content_type="multipart/form-data",
                           data={"csrf_token": token, "action": "check",
                                 "file": (io.BytesIO(data.encode()), "list.csv")})
    assert response.status_code == 302
    waiting = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'http-equiv="refresh"' in waiting and 'role="progressbar"' in waiting
    with app.app_context():
        job = db.session.scalar(select(ImportJob))
        assert job.status == ImportStatus.QUEUED and job.total_bytes == len(data)
        assert held == [("workers.tasks.run_import", (job.id,))]
        seen = []
        original = subscriber_lists._import_chunk

        def watch(*args):
            original(*args)
            seen.append(db.session.scalar(select(ImportJob.rows_done)))

        subscriber_lists._import_chunk = watch
        try:
            run_import(job.id)
        finally:
            subscriber_lists._import_chunk = original
        job = subscriber_lists.import_job(job.id)
        assert job.status == ImportStatus.DONE and job.valid == 2500
        assert seen[:2] == [0, 1000]  # progress written after each chunk of 1,000 rows
        run_import(job.id)  # a duplicate task does nothing
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'id="valid">2500<', done)


def test_a_file_broken_after_its_first_bytes_fails_the_job_clearly(app, client, monkeypatch):
    from newsletter import queue
    from newsletter.models import ImportStatus
    from newsletter.readers import subscriber_lists

    monkeypatch.setattr(queue, "send_task_now", lambda name, *args: True)  # run it here

    make_editor(app)
    data = b"email\n" + b"".join(b"r%d@example.com\n" % n for n in range(5000)) + b"\xff\xfe\n"
    with app.app_context():
        upload = subscriber_lists.keep_upload(data)
        with unit_of_work():
            job = subscriber_lists.start_import_job(upload, None, True, None)
        run_import(job.id)
        job = subscriber_lists.import_job(job.id)
        assert job.status == ImportStatus.FAILED and "not UTF-8" in job.error


def test_repeats_across_chunks_count_the_same_in_the_check_and_the_write(app, client):
    from newsletter.readers import subscriber_lists

    data = ("email\n" + "".join(f"r{n}@example.com\n" for n in range(2500))
            + "R0@example.com\nr1999@EXAMPLE.com\n").encode()
    with app.app_context():
        check = subscriber_lists.import_csv(data, "ok", dry_run=True)
        write = subscriber_lists.import_csv(data, "ok")
        again = subscriber_lists.import_csv(data, "ok", dry_run=True)
    assert (check.valid, check.duplicates) == (write.valid, write.duplicates) == (2500, 2)
    assert (again.valid, again.duplicates) == (0, 2502)


def test_only_the_import_accepts_a_list_larger_than_the_usual_body_cap(app, client,
                                                                      monkeypatch):
    from newsletter import queue
    from newsletter.models import ImportStatus
    from newsletter.readers import subscriber_lists

    monkeypatch.setattr(queue, "send_task_now", lambda name, *args: True)  # run it here
    make_editor(app)
    login(client)
    token = csrf_token_from(client, "/admin/subscribers/import")
    import io

    big = b"email\n" + b"x" * (security.EDITOR_BODY_LIMIT + 1024)  # over every other cap
    response = client.post("/admin/subscribers/import", content_type="multipart/form-data",
                           data={"csrf_token": token, "action": "check",
                                 "file": (io.BytesIO(big), "list.csv")})
    assert response.status_code == 302  # accepted: the job reports what is wrong
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        run_import(job_id)
        job = subscriber_lists.import_job(job_id)
        assert job.status == ImportStatus.FAILED and "Line 2 is not CSV" in job.error
    other = client.post("/admin/articles/new", content_type="multipart/form-data",
                        data={"csrf_token": token, "title": "x",
                              "file": (io.BytesIO(big), "x.bin")})
    assert other.status_code == 413


def test_sessions_over_for_a_day_are_forgotten_at_the_next_login(app, client):
    make_editor(app)
    login(client)
    client.post("/admin/logout", data={"csrf_token": csrf_token_from(client, "/admin/")})
    login(client)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EditorSession)) == 2
        db.session.execute(update(EditorSession).where(EditorSession.ended_at.is_not(None))
                           .values(ended_at=utcnow() - timedelta(days=2)))
        db.session.commit()
    login(app.test_client())
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EditorSession)) == 2
        assert db.session.scalar(select(func.count()).select_from(EditorSession).where(
            EditorSession.ended_at.is_not(None))) == 0
