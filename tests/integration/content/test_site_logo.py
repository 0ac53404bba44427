"""An owner uploads the logo: only real PNG, JPEG, GIF or WebP images under the cap are
stored (told by their bytes, whatever the name or declared type); the app serves it
with caching headers, and mails and pages show it."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from newsletter.content import site_logo
from newsletter.extensions import db
from newsletter.models import AuditEvent, SiteFile
from tests.factories import add_editor, make_editor
from tests.helpers import csrf_token_from, login, tiny_png

SVG_WITH_SCRIPT = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
                   b'<script>alert(document.cookie)</script><rect width="10" height="10"/></svg>')
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"\
      b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
# A JFIF header, then a frame header (SOF0) of 64 x 32 pixels.
JPEG = (JPEG_START + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0\x00\x11\x08\x00\x20\x00\x40\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01")
WEBP = (b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00"
        b"/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")


@pytest.fixture
def owner(app, client):
    make_editor(app)  # the first editor is an owner
    login(client)
    return client


def upload(client, data: bytes, filename: str = "logo.png",
           content_type: str = "image/png", action: str = "upload"):
    token = csrf_token_from(client, "/admin/settings/")
    return client.post("/admin/settings/logo", content_type="multipart/form-data", data={
        "csrf_token": token, "action": action,
        "logo": (io.BytesIO(data), filename, content_type)})


def stored_logo(app) -> SiteFile | None:
    with app.app_context():
        row = db.session.get(SiteFile, site_logo.NAME)
        return row and (row.content_type, row.data)


def failed_uploads(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "settings", AuditEvent.outcome == "failed"))


def test_an_uploaded_logo_is_stored_served_and_shown(app, client, owner):
    response = upload(owner, tiny_png(96, 24))
    assert response.status_code == 302
    assert stored_logo(app) == ("image/png", tiny_png(96, 24))
    page = owner.get("/admin/settings/").get_data(as_text=True)
    assert 'src="http://localhost/site/logo?v=' in page
    public = app.test_client().get("/subscribe").get_data(as_text=True)
    assert '<img src="http://localhost/site/logo?v=' in public

    logo = app.test_client().get("/site/logo")
    assert logo.status_code == 200 and logo.data == tiny_png(96, 24)
    assert logo.headers["Content-Type"] == "image/png"
    assert logo.headers["X-Content-Type-Options"] == "nosniff"
    assert logo.headers["Cache-Control"] == "public, max-age=300"  # no version: short
    assert "sandbox" in logo.headers["Content-Security-Policy"]
    etag = logo.headers["ETag"]
    assert app.test_client().get("/site/logo", headers={"If-None-Match": etag}).status_code == 304

    # A new logo is a new URL and a new ETag.
    assert upload(owner, GIF, "logo.gif", "image/gif").status_code == 302
    assert app.test_client().get("/site/logo", headers={"If-None-Match": etag}).status_code == 200
    assert upload(owner, b"", action="remove").status_code == 302
    assert stored_logo(app) is None
    assert app.test_client().get("/site/logo").status_code == 404


@pytest.mark.parametrize("data, filename, content_type", [
    (JPEG + b"\x00" * 100, "logo.jpg", "image/jpeg"),
    (WEBP, "logo.webp", "image/webp"),
    (GIF, "anything.txt", "text/plain"),  # the bytes decide, not the name
])
def test_every_raster_format_is_taken(app, client, owner, data, filename, content_type):
    assert upload(owner, data, filename, content_type).status_code == 302
    assert stored_logo(app)[1] == data


@pytest.mark.parametrize("data, filename, content_type, message", [
    (SVG_WITH_SCRIPT, "logo.svg", "image/svg+xml", "SVG is not taken"),
    (SVG_WITH_SCRIPT, "logo.png", "image/png", "must be a PNG, JPEG, GIF or WebP"),
    (b"<html><script>alert(1)</script></html>", "logo.png", "image/png", "must be a PNG"),
    (b"MZ\x90\x00" + b"\x00" * 64, "logo.gif", "image/gif", "must be a PNG"),
    (b"", "logo.png", "image/png", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * (512 * 1024), "big.png", "image/png", "over 512 KB"),
    # A decompression bomb: a few hundred bytes declaring 50,000 x 50,000 pixels.
    (tiny_png(1, 1).replace(b"\x00\x00\x00\x01\x00\x00\x00\x01", b"\x00\x00\xc3\x50" * 2),
     "bomb.png", "image/png", "50000×50000 pixels: at most 4096"),
    (b"GIF89a\xff\xff\xff\xff" + GIF[10:], "bomb.gif", "image/gif", "65535×65535"),
    # Only the magic bytes of an image, then a page: no image header.
    (JPEG_START + b"<html><script>alert(1)</script>", "x.jpg", "image/jpeg", "header is missing"),
    (b"\x89PNG\r\n\x1a\n<script>alert(1)</script>", "x.png", "image/png", "header is missing"),
])
def test_a_bad_upload_is_refused_with_a_reason_and_nothing_is_stored(
        app, client, owner, data, filename, content_type, message):
    upload(owner, tiny_png())
    response = upload(owner, data, filename, content_type)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert "Nothing was saved: check the logo below." in response.get_data(as_text=True)
    assert stored_logo(app) == ("image/png", tiny_png())  # the old logo stays
    assert failed_uploads(app) == 1


def test_a_request_without_a_file_is_refused(app, client, owner):
    token = csrf_token_from(owner, "/admin/settings/")
    response = owner.post("/admin/settings/logo", data={"csrf_token": token, "action": "upload"})
    assert response.status_code == 400 and "empty" in response.get_data(as_text=True)
    assert stored_logo(app) is None


def test_only_owners_upload(app, client):
    make_editor(app)
    add_editor(app, "author@example.com", "author")
    login(client, "author@example.com")
    token = csrf_token_from(client, "/admin/account")
    response = client.post("/admin/settings/logo", content_type="multipart/form-data",
                           data={"csrf_token": token,
                                 "logo": (io.BytesIO(tiny_png()), "logo.png", "image/png")})
    assert response.status_code == 403
    assert stored_logo(app) is None
