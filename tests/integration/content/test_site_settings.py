"""Branding and mail texts set by owners: strict values, used by pages and mails."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from newsletter.content import site_settings
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.models import AuditEvent, MailTemplate, SiteSetting, Subscriber, SubscriberStatus
from tests.factories import make_editor
from tests.helpers import csrf_token_from, login

GOOD = {"logo_url": "https://cdn.example.com/logo.png?v=2", "accent_color": "#AA3300",
        "site_description": "Foreign affairs, weekly & briefly",
        "confirm_text": "One click and {site_name} is yours.\n\nIt takes a second.",
        "welcome_text": "Hi from {site_name}! <b>We</b> write to {email} on Fridays."}


def save(client, **values):
    form = {"logo_url": "", "accent_color": "", "site_description": "", "confirm_text": "",
            "welcome_text": "", **values}
    token = csrf_token_from(client, "/admin/settings/")
    return client.post("/admin/settings/", data={**form, "csrf_token": token, "action": "save"})


@pytest.fixture
def owner(app, client):
    make_editor(app)  # the first editor is an owner
    login(client)
    return client


def stored(app) -> dict[str, str]:
    with app.app_context():
        return dict(db.session.execute(select(SiteSetting.key, SiteSetting.value)).all())


def rendered(app, template: MailTemplate):
    with app.app_context():
        reader = Subscriber(id=7, email="ada@example.com", name="Ada", token_nonce="n",
                            unsubscribe_key="k", status=SubscriberStatus.ACTIVE)
        return outbox.render(template, reader)


def test_owner_saves_branding_and_pages_use_it(app, client, owner):
    response = save(owner, **GOOD)
    assert response.status_code == 302
    assert stored(app)["accent_color"] == "#aa3300"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "settings")) == 1

    page = app.test_client().get("/subscribe")
    body = page.get_data(as_text=True)
    assert '<img src="https://cdn.example.com/logo.png?v=2" alt="" class="logo">' in body
    assert "Foreign affairs, weekly &amp; briefly" in body
    assert '<link rel="stylesheet" href="/branding/aa3300.css">' in body
    img_src = re.search(r"img-src ([^;]+)", page.headers["Content-Security-Policy"]).group(1)
    assert img_src == "'self' data: https://cdn.example.com"
    css = app.test_client().get("/branding/aa3300.css")
    assert css.mimetype == "text/css" and css.get_data(as_text=True) == \
        ":root { --accent:#aa3300; }\n"
    assert b"<subtitle>Foreign affairs, weekly &amp; briefly</subtitle>" in \
        app.test_client().get("/archive/feed.atom").data


def test_mails_use_the_texts_and_the_accent_colour(app, client, owner):
    save(owner, **GOOD)
    welcome = rendered(app, MailTemplate.WELCOME)
    assert "Hi from The Newsletter! &lt;b&gt;We&lt;/b&gt; write to ada@example.com" in welcome.html
    assert "Hi from The Newsletter! <b>We</b> write to ada@example.com on Fridays." in welcome.text
    confirm = rendered(app, MailTemplate.CONFIRM)
    assert re.search(r"<p[^>]*>One click and The Newsletter is yours.</p>", confirm.html)
    assert "background-color: #aa3300" in confirm.html
    assert 'src="https://cdn.example.com/logo.png?v=2"' in confirm.html
    assert "One click and The Newsletter is yours.\n\nIt takes a second." in confirm.text
    assert "ada@example.com" not in confirm.text and "Ada" not in confirm.text


@pytest.mark.parametrize("key, value, message", [
    ("accent_color", "red", "#rrggbb"), ("accent_color", "#fff", "#rrggbb"),
    ("accent_color", "#12345g", "#rrggbb"), ("accent_color", "#123456}", "characters"),
    ("accent_color", "#12345;", "#rrggbb"), ("accent_color", "#1234\n5", "#rrggbb"),
    ("logo_url", "http://cdn.example.com/logo.png", "https://"),
    ("logo_url", "javascript:alert(1)", "https://"),
    ("logo_url", "https://cdn.example.com/a b.png", "no spaces"),
    ("logo_url", 'https://cdn.example.com/"onerror="x', "no spaces"),
    ("logo_url", "https://cdn.example.com/x.png'; script-src *", "no spaces"),
    ("logo_url", "https://user@cdn.example.com/x.png", "host name"),
    ("logo_url", "https://localhost/x.png", "host name"),
    ("logo_url", "https://CDN.example.com/x.png", "lower case"),
    ("logo_url", "https://cdn.example.com:99999/x.png", "port"),
    ("logo_url", "https://" + "a" * 500 + ".com/", "At most 500"),
    ("site_description", "two\nlines", "one line"),
    ("site_description", "bell\x07", "control"),
    ("confirm_text", "Hello {email}", "Unknown placeholder {email}"),
    ("confirm_text", "{{ config.SECRET_KEY }}", "Unknown placeholder"),
    ("welcome_text", "{% for x in y %}{% endfor %}", "Unknown placeholder"),
    ("welcome_text", "x" * 2001, "At most 2000"),
    ("site_name", "The\nDaily", "site name is one line"),
    ("site_name", "x" * 101, "At most 100"),
    ("site_name", "Daily\x1b[31m", "control"),
    ("postal_address", "x" * 301, "At most 300"),
    ("postal_address", "1 Main St\u2028Bcc: x@example.com", "control"),
    ("sender_name", "=?utf-8?q?Bank?=", "must not contain"),
    ("sender_name", "Desk\rBcc: x@example.com", "line breaks"),
    ("reply_to", "not an address", "not valid"),
    ("reply_to", "a@example.com\r\nBcc: x@example.com", "not allowed"),
    ("reply_to", "a@example.com, b@example.com", "not valid"),
])
def test_bad_values_are_refused_with_a_reason_and_nothing_is_stored(app, client, owner, key,
                                                                    value, message):
    response = save(owner, **{key: value})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert f"Nothing was saved: check the {site_settings.LABELS[key]} below." in \
        response.get_data(as_text=True)
    assert stored(app) == {}


def test_a_bad_value_in_the_database_never_reaches_a_page(app, client):
    with app.app_context():
        db.session.add_all([SiteSetting(key="accent_color", value="#000000;} body{display:none"),
                            SiteSetting(key="logo_url", value="https://x.example/a'; script-src *"),
                            SiteSetting(key="welcome_text", value="{{ config.SECRET_KEY }}")])
        db.session.commit()
    page = client.get("/subscribe")
    assert "/branding/" not in page.get_data(as_text=True)
    assert "x.example" not in page.headers["Content-Security-Policy"]
    assert "Our weekly digest of new articles will reach ada@example.com." in rendered(
        app, MailTemplate.WELCOME).text


@pytest.mark.parametrize("accent", ["red", "12345", "1234567", "12345G", "..%2f..%2fx"])
def test_branding_stylesheet_only_for_a_colour(app, client, accent):
    assert client.get(f"/branding/{accent}.css").status_code == 404


def test_preview_shows_unsaved_values_and_refuses_bad_ones(app, client, owner):
    page = owner.post("/admin/settings/", data={
        **GOOD, "action": "preview", "csrf_token": csrf_token_from(owner, "/admin/settings/")})
    assert page.status_code == 200 and "Preview (not saved)" in page.get_data(as_text=True)
    assert stored(app) == {}
    src = re.search(r'src="(/admin/settings/preview/confirm\?[^"]+)"',
                    page.get_data(as_text=True)).group(1).replace("&amp;", "&")
    preview = owner.get(src)
    assert preview.status_code == 200
    assert "One click and The Newsletter is yours." in preview.get_data(as_text=True)
    assert "sandbox" in preview.headers["Content-Security-Policy"]
    saved_preview = owner.get("/admin/settings/preview/welcome").get_data(as_text=True)
    assert "Our weekly digest of new articles will reach reader@example.com." in saved_preview
    assert owner.get("/admin/settings/preview/confirm?accent_color=red").status_code == 400
    assert owner.get("/admin/settings/preview/other").status_code == 404


def test_site_name_address_and_sender_reach_pages_and_mails(app, client, owner):
    response = save(owner, site_name="The Harbour Post", sender_name="Harbour Desk",
                    postal_address="The Harbour Post, 12 Quay Road, 4000 Port Town",
                    reply_to="letters@harbour.example")
    assert response.status_code == 302
    page = app.test_client().get("/subscribe").get_data(as_text=True)
    assert "The Harbour Post</a>" in page and "<title>Subscribe · The Harbour Post</title>" in page
    feed = app.test_client().get("/archive/feed.atom").data
    assert b"<title>The Harbour Post: past issues</title>" in feed
    welcome = rendered(app, MailTemplate.WELCOME)
    assert welcome.subject == "Welcome to The Harbour Post"
    assert "The Harbour Post, 12 Quay Road, 4000 Port Town" in welcome.text
    assert "The Harbour Post, 12 Quay Road, 4000 Port Town" in welcome.html
    with app.app_context():
        assert site_settings.mail_from() == "Harbour Desk <news@example.com>"


def test_an_emptied_setting_falls_back_to_the_environment(app, client, owner):
    save(owner, site_name="The Harbour Post")
    save(owner, site_name="")
    page = owner.get("/admin/settings/").get_data(as_text=True)
    assert 'placeholder="The Newsletter" value=""' in page
    assert rendered(app, MailTemplate.WELCOME).subject == "Welcome to The Newsletter"
