"""The branded digest (and its "view in your browser" page), confirmation and welcome
mails in chromium at a phone's 320 px and the mail's own 600 px, light and dark
(prefers-color-scheme): nothing wider than the window, a title, the uploaded logo
loaded, and the dark palette applied. Each is saved as <mail>-<width>-<scheme>.png
under the test's tmp dir to look at."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from newsletter.content import site_logo, site_settings
from newsletter.db import unit_of_work
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.models import MailTemplate, Subscriber
from tests.factories import add_subscribers, api_token, send_now
from tests.helpers import tiny_png, wait_until_sent

WIDTHS = (320, 600)
SCHEMES = ("light", "dark")
ARTICLE = """The council met on Monday and voted on the harbour plan after a long debate.
A link that does not break: https://news.example.com/""" + "a" * 120 + """

## What was decided

- more buses to the quay
- fewer cars in the old town

Read [the minutes](https://city.example/minutes).
"""


def branded_mails(app, mailbox) -> dict[str, str]:
    """The HTML of the digest as received, and of the confirmation and welcome mails."""
    with app.app_context(), unit_of_work():
        for key, value in {"site_name": "The Harbour Post", "accent_color": "#b3261e",
                           "postal_address": "The Harbour Post, 12 Quay Road, 4000 Port Town",
                           "description": "News from the harbour, every Monday"}.items():
            site_settings.set_one(key, value)
        site_logo.save(tiny_png(240, 48))
    created = app.test_client().post(
        "/api/v1/articles", headers={"Authorization": f"Bearer {api_token(app)}"},
        json={"title": "Council backs the harbour plan and a " + "very" * 20 + "long word",
              "url": "https://news.example.com/harbour", "body_markdown": ARTICLE,
              "categories": ["Local"]})
    assert created.status_code == 201
    [reader_id] = add_subscribers(app, 1)
    wait_until_sent(app, send_now(app))
    [digest] = mailbox.wait_for(1)
    mails = {"digest": digest.get_body(("html",)).get_content()}
    # "View in your browser": the reader's copy as a page of the app.
    [link] = re.findall(r"View in your browser: (\S+)", digest.get_body(("plain",)).get_content())
    page = app.test_client().get(urlsplit(link).path)
    assert page.status_code == 200
    mails["web-copy"] = page.get_data(as_text=True)
    with app.app_context():
        reader = db.session.get(Subscriber, reader_id)
        for template in (MailTemplate.CONFIRM, MailTemplate.WELCOME):
            mails[template.value] = outbox.render(template, reader).html
    return mails


@pytest.mark.usefixtures("live_server")
def test_mails_fit_phones_and_survive_dark_mode(app, browser, mailbox, tmp_path):
    problems = []
    for name, html in branded_mails(app, mailbox).items():
        for width in WIDTHS:
            for scheme in SCHEMES:
                context = browser.new_context(viewport={"width": width, "height": 800},
                                              color_scheme=scheme)
                page = context.new_page()
                page.set_content(html, wait_until="load")
                page.screenshot(path=str(tmp_path / f"{name}-{width}-{scheme}.png"),
                                full_page=True)
                found = page.evaluate("""() => {
                    const root = document.documentElement;
                    const logo = document.querySelector("img.logo");
                    const card = document.querySelector(".card");
                    return {scroll: root.scrollWidth, client: root.clientWidth,
                            title: document.title, logo: logo ? logo.naturalWidth : 0,
                            body: getComputedStyle(document.body).backgroundColor,
                            card: getComputedStyle(card).backgroundColor,
                            text: getComputedStyle(card.querySelector("h1, p")).color};
                }""")
                context.close()
                where = f"{name} at {width} px, {scheme}"
                if found["scroll"] > found["client"]:
                    problems.append(f"{where}: {found['scroll']} px wide")
                if not found["title"].strip():
                    problems.append(f"{where}: empty <title>")
                if found["logo"] != 240:
                    problems.append(f"{where}: the logo did not load")
                expected = ({"body": "rgb(17, 19, 24)", "card": "rgb(27, 31, 39)",
                             "text": "rgb(232, 234, 238)"} if scheme == "dark" else
                            {"body": "rgb(243, 244, 246)", "card": "rgb(255, 255, 255)",
                             "text": "rgb(29, 36, 51)"})
                for part, colour in expected.items():
                    if found[part] != colour:
                        problems.append(f"{where}: {part} is {found[part]}, not {colour}")
    print(f"mail screenshots in {tmp_path}")
    assert sorted(path.name for path in tmp_path.glob("*.png")) == sorted(
        f"{name}-{width}-{scheme}.png" for name in ("digest", "web-copy", "confirm", "welcome")
        for width in WIDTHS for scheme in SCHEMES)
    assert problems == []
