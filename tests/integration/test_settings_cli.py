"""`flask settings show|set|logo`: what a newsroom sets once, from the command line.
A bad value exits with code 2 and one line naming the setting; nothing is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from newsletter.extensions import db
from newsletter.models import AuditEvent, SiteFile, SiteSetting
from tests.helpers import tiny_png

pytestmark = pytest.mark.usefixtures("clean_state")


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["settings", *args])


def stored(app) -> dict[str, str]:
    with app.app_context():
        return dict(db.session.execute(select(SiteSetting.key, SiteSetting.value)).all())


def test_set_and_show(app):
    assert cli(app, "set", "site_name", "The Harbour Post").exit_code == 0
    assert cli(app, "set", "postal_address", "12 Quay Road, 4000 Port Town").exit_code == 0
    result = cli(app, "set", "accent_color", "#B3261E")
    assert result.exit_code == 0 and result.output == "accent_color = #b3261e\n"
    assert cli(app, "set", "description", "News from the harbour").exit_code == 0
    assert cli(app, "set", "logo_url", "https://cdn.example.com/logo.png").exit_code == 0
    assert stored(app) == {"site_name": "The Harbour Post", "accent_color": "#b3261e",
                           "postal_address": "12 Quay Road, 4000 Port Town",
                           "site_description": "News from the harbour",
                           "logo_url": "https://cdn.example.com/logo.png"}
    shown = cli(app, "show").output.splitlines()
    assert "site_name = The Harbour Post" in shown
    assert "postal_address = 12 Quay Road, 4000 Port Town" in shown
    assert "sender_name = The Test Daily  (default)" in shown  # MAIL_FROM's name
    assert "logo upload = (none)" in shown
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.detail).where(
            AuditEvent.action == "settings").order_by(AuditEvent.id.desc()).limit(1)) == "logo_url"
    # Empty: back to the environment's value.
    assert cli(app, "set", "site_name", "").exit_code == 0
    assert "site_name = The Newsletter  (default)" in cli(app, "show").output.splitlines()


@pytest.mark.parametrize("key, value, message", [
    ("accent_color", "red", "accent_color: The accent colour must be written #rrggbb"),
    ("postal_address", "x" * 301, "postal_address: At most 300 characters."),
    ("site_name", "Daily\x07", "site_name: Remove the control characters"),
    ("site_name", "two\nlines", "site_name: The site name is one line."),
    ("reply_to", "nobody", "reply_to: That email address is not valid"),
    ("logo_url", "http://cdn.example.com/x.png", "logo_url: The logo URL must start with https://"),
    ("secret_key", "x", "Unknown setting 'secret_key'"),
])
def test_a_bad_value_exits_2_with_one_line_and_stores_nothing(app, key, value, message):
    result = cli(app, "set", key, value)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("Error: " + message)
    assert stored(app) == {}


def test_logo_upload_and_removal(app, tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(tiny_png(96, 24))
    result = cli(app, "logo", str(logo))
    assert result.exit_code == 0 and "image/png" in result.output
    assert "logo upload = http://localhost/site/logo?v=" in cli(app, "show").output
    assert cli(app, "logo", "--remove").exit_code == 0
    with app.app_context():
        assert db.session.get(SiteFile, "logo") is None


@pytest.mark.parametrize("content, message", [
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "SVG is not taken"),
    (b"GIF89a" + b"\x00" * (512 * 1024), "over 512 KB"),
    (b"", "empty"),
])
def test_a_bad_logo_exits_2_and_stores_nothing(app, tmp_path, content, message):
    logo = tmp_path / "logo.png"
    logo.write_bytes(content)
    result = cli(app, "logo", str(logo))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("Error: logo: ") and message in result.output
    with app.app_context():
        assert db.session.get(SiteFile, "logo") is None


def test_logo_needs_a_readable_file_or_remove(app, tmp_path):
    missing = cli(app, "logo", str(tmp_path / "nope.png"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    assert cli(app, "logo").exit_code == 2
