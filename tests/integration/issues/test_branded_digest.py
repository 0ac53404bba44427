"""The digest a reader receives carries what the newsroom set once (name, address,
sender, logo, accent colour) and what the writer wrote in Markdown through the API:
a real worker, a real SMTP server, both parts of the mail, and SpamAssassin's
verdict on the mail exactly as it arrived."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from email import policy
from email.parser import BytesParser

import pytest

from newsletter.content import site_logo, site_settings
from newsletter.db import unit_of_work
from tests.factories import add_subscribers, api_token, send_now
from tests.helpers import tiny_png, wait_until_sent

pytestmark = pytest.mark.usefixtures("clean_state", "celery_worker")

SETTINGS = {
    "site_name": "The Harbour Post",
    "postal_address": "The Harbour Post, 12 Quay Road, 4000 Port Town",
    "accent_color": "#b3261e",
    "description": "News from the harbour, every Monday",
    "sender_name": "Harbour Post Desk",
    "reply_to": "letters@harbour.example",
}
BODY = """The council met on Monday and voted on the harbour plan after a long debate
about traffic, housing and the future of the old fish market.

## What was decided

- more buses to the quay
- fewer cars in the old town

Read [the minutes](https://city.example/minutes) for every vote and every speaker.

![The council chamber](https://img.example/chamber.jpg)
"""


def send_branded_digest(app, mailbox):
    """Brand the site, post a Markdown article through the API, send: the one mail."""
    with app.app_context(), unit_of_work():
        for key, value in SETTINGS.items():
            site_settings.set_one(key, value)
        site_logo.save(tiny_png(96, 24))
    token = api_token(app)
    created = app.test_client().post(
        "/api/v1/articles", headers={"Authorization": f"Bearer {token}"},
        json={"title": "Council backs the harbour plan", "url": "https://news.example.com/harbour",
              "body_markdown": BODY, "categories": ["Local"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    add_subscribers(app, 1)
    wait_until_sent(app, send_now(app))
    [message] = mailbox.messages
    return message


def test_the_received_digest_keeps_the_markdown_and_carries_the_branding(app, mailbox):
    message = send_branded_digest(app, mailbox)
    assert message["From"].addresses[0].display_name == "Harbour Post Desk"
    assert str(message["Reply-To"]) == "letters@harbour.example"

    html = message.get_body(("html",)).get_content()
    for markup in (">What was decided</h2>", "<ul", ">more buses to the quay</li>",
                   ">fewer cars in the old town</li>", 'href="https://city.example/minutes"',
                   'src="https://img.example/chamber.jpg"', 'alt="The council chamber"'):
        assert markup in html
    # Settings: logo (uploaded, served by the app), site name, description, address.
    [logo] = re.findall(r'<img class="logo"[^>]* src="([^"]+)" alt="The Harbour Post"', html)
    assert logo.startswith("http://localhost/site/logo?v=")
    assert "The Harbour Post, 12 Quay Road, 4000 Port Town" in html
    assert "News from the harbour, every Monday" in html
    # The accent colour: the masthead and every "Read the article" link (a tracked link).
    assert re.search(r'class="site-name"[^>]*color: #b3261e', html)
    [tracked] = re.findall(r'class="more" href="http://localhost(/r/[^"]+)"[^>]*color: #b3261e',
                           html)
    assert app.test_client().get(tracked).location == "https://news.example.com/harbour"
    assert "#1f5eff" not in html  # the default blue is gone
    # Email-client-grade: a real title, a preheader, tables at most 600 px, system fonts.
    assert f"<title>{message['Subject']}</title>" in html
    assert re.search(r'<div class="preheader" style="display:none;[^"]*">\S', html)
    assert 'role="presentation"' in html and "max-width: 600px" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@font-face" not in html and "<link" not in html
    assert all(alt for alt in re.findall(r'<img[^>]*alt="([^"]*)"', html))
    assert len(re.findall(r"<img", html)) == len(re.findall(r"<img[^>]* alt=", html))

    text = message.get_body(("plain",)).get_content()
    lines = text.splitlines()
    assert lines[0] == "The Harbour Post - News from the harbour, every Monday"
    assert "What was decided" in lines
    assert "- more buses to the quay" in lines and "- fewer cars in the old town" in lines
    assert "[Image: The council chamber]" in lines
    assert any("the minutes (https://city.example/minutes)" in line for line in lines)
    assert "The Harbour Post, 12 Quay Road, 4000 Port Town" in lines
    assert any(line.startswith("Read the article: http://localhost/r/") for line in lines)

    # The logo the mail points at is served, cacheable, and checked by its ETag.
    client = app.test_client()
    served = client.get(logo.removeprefix("http://localhost"))
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.data == tiny_png(96, 24)
    assert "immutable" in served.headers["Cache-Control"]
    again = client.get(logo.removeprefix("http://localhost"),
                       headers={"If-None-Match": served.headers["ETag"]})
    assert again.status_code == 304


def spam_status(raw: bytes) -> tuple[float, str]:
    """SpamAssassin's score of a raw message, network tests off; and its status line."""
    result = subprocess.run(["spamassassin", "-t", "-L"], input=raw, capture_output=True,
                            timeout=120, check=False)
    report = result.stdout.decode(errors="replace")
    status = re.search(r"^X-Spam-Status: .*(?:\n[ \t].*)*", report, re.MULTILINE)
    assert status, f"no X-Spam-Status in spamassassin's output: {result.stderr[-500:]!r}"
    score = float(re.search(r"score=(-?[\d.]+)", status.group(0)).group(1))
    return score, " ".join(status.group(0).split())


def test_spamassassin_scores_the_branded_digest_with_images_low(app, mailbox):
    if shutil.which("spamassassin") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the spam score test: install Debian's spamassassin")
        pytest.skip("needs Debian's spamassassin (apt-get install spamassassin)")
    send_branded_digest(app, mailbox)
    [raw] = mailbox.raw
    html = BytesParser(policy=policy.default).parsebytes(raw).get_body(("html",)).get_content()
    assert len(re.findall(r"<img ", html)) == 2  # the logo and the article's image
    score, status = spam_status(raw)
    print(f"spamassassin: {status}")
    assert score <= 1.0, status

