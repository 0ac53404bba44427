"""The logo an owner uploads: stored in the database, served by the app.

Only raster images a mail client shows are taken (PNG, JPEG, GIF, WebP), told by
their first bytes, never by a name or a declared type: an SVG can carry script, and
a file that merely claims to be an image is refused. Nothing is stored unless the
whole file passes.
"""

from __future__ import annotations

import hashlib

from newsletter.extensions import db
from newsletter.mail.links import external_url
from newsletter.models import SiteFile

NAME = "logo"
MAX_BYTES = 512 * 1024


class InvalidLogo(ValueError):
    """An upload refused; the message says why."""


def image_type(data: bytes) -> str | None:
    """The image's content type from its magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check(data: bytes) -> str:
    """The content type of an acceptable logo, or InvalidLogo."""
    if not data:
        raise InvalidLogo("The logo file is empty.")
    if len(data) > MAX_BYTES:
        raise InvalidLogo(f"The logo is over {MAX_BYTES // 1024} KB: make it smaller.")
    content_type = image_type(data)
    if content_type is None:
        raise InvalidLogo("The logo must be a PNG, JPEG, GIF or WebP image "
                          "(SVG is not taken: it can carry script).")
    return content_type


def save(data: bytes) -> str:
    """Check and store the logo; returns its content type. The caller commits."""
    content_type = check(data)
    row = db.session.get(SiteFile, NAME)
    digest = hashlib.sha256(data).hexdigest()
    if row is None:
        db.session.add(SiteFile(name=NAME, content_type=content_type, data=data, sha256=digest))
    else:
        row.content_type, row.data, row.sha256 = content_type, data, digest
    return content_type


def remove() -> bool:
    """Forget the uploaded logo; the caller commits."""
    row = db.session.get(SiteFile, NAME)
    if row is None:
        return False
    db.session.delete(row)
    return True


def stored() -> SiteFile | None:
    return db.session.get(SiteFile, NAME)


def version() -> str | None:
    """The stored logo's hash (its ETag), without loading the image."""
    return db.session.scalar(db.select(SiteFile.sha256).where(SiteFile.name == NAME))


def current_url() -> str:
    """The uploaded logo's absolute URL (its hash in it, so a new logo is a new URL
    that caches may keep for good), or "" when none was uploaded."""
    digest = version()
    return external_url("public.site_logo", v=digest[:16]) if digest else ""
