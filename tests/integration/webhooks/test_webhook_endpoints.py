"""Adding webhook endpoints from the CLI (its output is a contract), the API and the
admin page: bad input is refused with a clear message and nothing is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.db import unit_of_work
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.models import WebhookEndpoint
from tests.factories import PASSWORD, add_editor, session_client

GOOD_SECRET = "sixteen-bytes-ok"


@pytest.fixture
def cli(app, clean_state):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    return app.test_cli_runner()


def stored(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(WebhookEndpoint))


def test_cli_add_list_remove(app, cli):
    added = cli.invoke(args=["webhooks", "add", "http://127.0.0.1:8080/hook",
                             "--events", "subscriber.confirmed,issue.sent"])
    assert added.exit_code == 0, added.output
    last = added.output.strip().splitlines()[-1]
    fields = dict(part.split("=", 1) for part in last.split())
    assert fields["id"].isdigit() and fields["secret"].startswith("whsec_")
    assert len(fields["secret"]) >= 16
    given = cli.invoke(args=["webhooks", "add", "https://127.0.0.1/other", "--events",
                             "subscriber.bounced", "--secret", GOOD_SECRET])
    assert given.exit_code == 0 and "secret=" not in given.output  # not echoed back
    listed = cli.invoke(args=["webhooks", "list"]).output
    assert f"{fields['id']}\tenabled\tsubscriber.confirmed,issue.sent\thttp://127.0.0.1:8080/hook" \
        in listed
    assert GOOD_SECRET not in listed and fields["secret"] not in listed
    removed = cli.invoke(args=["webhooks", "remove", fields["id"]])
    assert removed.exit_code == 0 and stored(app) == 1
    again = cli.invoke(args=["webhooks", "remove", fields["id"]])
    assert again.exit_code != 0 and "no webhook endpoint" in again.output


def test_the_secret_is_stored_sealed(app, cli):
    cli.invoke(args=["webhooks", "add", "http://127.0.0.1/h", "--events", "issue.sent",
                     "--secret", GOOD_SECRET])
    with app.app_context():
        endpoint = db.session.scalars(select(WebhookEndpoint)).one()
        assert GOOD_SECRET not in endpoint.secret_sealed
        from newsletter.webhooks import endpoints

        assert endpoints.unsealed_secret(endpoint) == GOOD_SECRET.encode()


@pytest.mark.parametrize(("url", "events", "secret", "message"), [
    ("ftp://example.com/hook", "issue.sent", None, "not an http(s) URL"),
    ("javascript:alert(1)", "issue.sent", None, "not an http(s) URL"),
    ("http://127.0.0.1:8080/hook", "issue.sent", None, "not a public address"),
    ("http://localhost/hook", "issue.sent", None, "not a public address"),
    ("http://10.1.2.3/hook", "issue.sent", None, "not a public address"),
    ("http://169.254.169.254/latest/meta-data", "issue.sent", None, "not a public address"),
    ("http://[::1]/hook", "issue.sent", None, "not a public address"),
    ("http://[::ffff:127.0.0.1]/hook", "issue.sent", None, "not a public address"),
    ("http://0.0.0.0/hook", "issue.sent", None, "not a public address"),
    ("https://user:pw@example.com/hook", "issue.sent", None, "no user name or password"),
    ("https://example.com/a b", "issue.sent", None, "spaces or control characters"),
    ("https://example.com/hook\r\nX: y", "issue.sent", None, "spaces or control characters"),
    ("http://127.0.0.1/hook", "subscriber.deleted", None, "Unknown event"),
    ("http://127.0.0.1/hook", ",", None, "at least one event"),
    ("http://127.0.0.1/hook", "issue.sent", "too-short", "at least 16 bytes"),
    ("http://127.0.0.1/hook", "issue.sent", "sixteen\x00bytes-nul", "control characters"),
])
def test_bad_input_is_refused_and_nothing_is_stored(app, clean_state, url, events, secret,
                                                    message):
    # Private networks refused except where the case is about something else.
    app.config["WEBHOOK_ALLOW_PRIVATE"] = message not in ("not a public address",)
    args = ["webhooks", "add", url, "--events", events] + (["--secret", secret] if secret else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert stored(app) == 0


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data",
                                 "http://[fe80::1]/hook", "http://0.0.0.0/hook"])
def test_allowing_private_networks_still_refuses_the_metadata_service(app, cli, url):
    result = cli.invoke(args=["webhooks", "add", url, "--events", "issue.sent"])
    assert result.exit_code != 0 and "not a public address" in result.output
    assert stored(app) == 0
    assert cli.invoke(args=["webhooks", "add", "http://10.1.2.3/hook",
                            "--events", "issue.sent"]).exit_code == 0


def api_token_with(app, role: str, scopes: list[str]) -> str:
    add_editor(app, f"{role}@example.com", role)
    with app.app_context(), unit_of_work():
        token, _ = accounts.create_api_token(f"{role}@example.com", "crm", scopes)
    return token


def test_api_lists_and_adds_endpoints_for_owner_tokens(app, client):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    token = api_token_with(app, "owner", ["webhooks:read", "webhooks:write"])
    auth = {"Authorization": f"Bearer {token}"}
    created = client.post("/api/v1/webhooks", headers=auth, json={
        "url": "http://127.0.0.1:9/hook", "events": ["subscriber.unsubscribed"]})
    assert created.status_code == 201, created.json
    assert created.json["secret"].startswith("whsec_") and created.json["enabled"] is True
    listed = client.get("/api/v1/webhooks", headers=auth).json["webhooks"]
    assert [w["id"] for w in listed] == [created.json["id"]] and "secret" not in listed[0]
    for bad in ({"url": "http://127.0.0.1/h", "events": ["nope"]},
                {"url": ["x"], "events": ["issue.sent"]},
                {"url": "http://127.0.0.1/h", "events": "issue.sent", "secret": 12345678901234567},
                {"url": "http://127.0.0.1/h", "events": [{"a": 1}]}):
        answer = client.post("/api/v1/webhooks", headers=auth, json=bad)
        assert answer.status_code == 400 and answer.json["error"], bad
    assert stored(app) == 1


def test_an_editor_cannot_hold_the_webhook_scopes(app, client):
    read_only = api_token_with(app, "owner", ["webhooks:read"])  # the first editor: owner
    add_editor(app, "editor@example.com", "editor")
    with app.app_context(), pytest.raises(accounts.EditorError, match="cannot hold"):
        accounts.create_api_token("editor@example.com", "crm", ["webhooks:read"])
    answer = client.post("/api/v1/webhooks", headers={"Authorization": f"Bearer {read_only}"},
                         json={"url": "http://127.0.0.1/h", "events": ["issue.sent"]})
    assert answer.status_code == 403 and answer.json["missing_scope"] == "webhooks:write"


def test_the_admin_page_adds_an_endpoint_and_shows_its_log(app, clean_state):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    owner = session_client(app, add_editor(app, "owner@example.com", "owner"))
    page = owner.post("/admin/webhooks", data={
        "url": "http://127.0.0.1:9/hook", "event": ["issue.sent", "subscriber.bounced"],
        "csrf_token": _csrf(owner)}, follow_redirects=True)
    assert page.status_code == 200 and b"whsec_" in page.data
    bad = owner.post("/admin/webhooks", data={"url": "gopher://x", "event": ["issue.sent"],
                                              "csrf_token": _csrf(owner)})
    assert bad.status_code == 200 and b"not an http(s) URL" in bad.data
    with app.app_context():
        endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    log = owner.get(f"/admin/webhooks/{endpoint_id}")
    assert log.status_code == 200 and b"Nothing sent to it yet" in log.data
    assert owner.get("/admin/webhooks/999999").status_code == 404
    editor = session_client(app, add_editor(app, "editor@example.com", "editor"))
    assert editor.get("/admin/webhooks").status_code in (302, 403)
    assert PASSWORD  # the factories' editors log in with it; sessions here skip the form


def _csrf(client) -> str:
    import re

    page = client.get("/admin/webhooks").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_log_page_resends_and_enables(app, clean_state):
    from newsletter.mail.addresses import check_email
    from newsletter.models import ConsentSource, WebhookDelivery, WebhookDeliveryStatus
    from newsletter.readers import status
    from newsletter.webhooks import endpoints

    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    owner = session_client(app, add_editor(app, "owner@example.com", "owner"))
    with app.app_context():
        with unit_of_work():
            endpoint, _ = endpoints.add("http://127.0.0.1:9/hook", ["subscriber.confirmed"])
            status.enter(check_email("ada@example.com"), None, status.Change.JOIN_CONFIRMED,
                         status.Origin(ConsentSource.API))
        endpoint_id = endpoint.id
        delivery = db.session.scalars(select(WebhookDelivery)).one()
        delivery_id = delivery.id
        delivery.status = WebhookDeliveryStatus.FAILED  # as if given up
        db.session.commit()
    token = _csrf(owner)
    wrong = owner.post(f"/admin/webhooks/{endpoint_id + 1}/deliveries/{delivery_id}/resend",
                       data={"csrf_token": token})  # another endpoint's path: refused
    assert wrong.status_code == 302
    with app.app_context():
        assert db.session.get(WebhookDelivery, delivery_id).status is WebhookDeliveryStatus.FAILED
    page = owner.post(f"/admin/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend",
                      data={"csrf_token": token}, follow_redirects=True)
    assert b"Queued again" in page.data and b"pending" in page.data
    with app.app_context(), unit_of_work():
        endpoints.disable(endpoint_id, "every attempt failed for 24 h")
    page = owner.get(f"/admin/webhooks/{endpoint_id}")
    assert b"every attempt failed for 24 h" in page.data
    enabled = owner.post(f"/admin/webhooks/{endpoint_id}/enable", data={"csrf_token": token},
                         follow_redirects=True)
    assert b"Endpoint enabled" in enabled.data
    no_token = owner.post(f"/admin/webhooks/{endpoint_id}/remove")
    assert no_token.status_code == 400 and stored(app) == 1  # CSRF
