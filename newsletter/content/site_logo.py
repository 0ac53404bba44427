"""The logo an owner uploads: stored in the database, served by the app.

Only raster images a mail client shows are taken (PNG, JPEG, GIF, WebP), told by
their first bytes, never by a name or a declared type: an SVG can carry script, and
a file that merely claims to be an image is refused. Its width and height are read
from its header and bounded too: a small file can declare a huge image (a
decompression bomb) that every reader's mail client and browser would try to decode.
Nothing is stored unless the whole file passes.
"""

from __future__ import annotations

import hashlib
import struct

from newsletter.extensions import db
from newsletter.mail.links import external_url
from newsletter.models import SiteFile

NAME = "logo"
MAX_BYTES = 512 * 1024
MAX_SIDE = 4096  # pixels: far more than a logo needs, far less than a bomb
# JPEG frame headers (SOF0..SOF15) carry the size; C4, C8 and CC are other markers.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


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


def dimensions(data: bytes, content_type: str) -> tuple[int, int] | None:
    """(width, height) as the image's header declares them, or None when the header
    is missing or cut short."""
    try:
        if content_type == "image/png":
            if data[12:16] != b"IHDR":
                return None
            return struct.unpack(">II", data[16:24])
        if content_type == "image/gif":
            return struct.unpack("<HH", data[6:10])
        if content_type == "image/webp":
            return _webp_dimensions(data)
        return _jpeg_dimensions(data)
    except struct.error:  # too short
        return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":  # 24-bit width-1 and height-1
        minus = data[24:30]
        if len(minus) < 6:
            return None
        return (int.from_bytes(minus[:3], "little") + 1,
                int.from_bytes(minus[3:], "little") + 1)
    if kind == b"VP8L" and data[20:21] == b"\x2f":  # 14-bit width-1 and height-1
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # 14-bit sizes
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if marker == 0xDA:  # the scan starts before any frame header: broken
            return None
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
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
    size = dimensions(data, content_type)
    if size is None or 0 in size:
        raise InvalidLogo("The logo's image header is missing or broken: export it again.")
    if max(size) > MAX_SIDE:
        raise InvalidLogo(f"The logo is {size[0]}×{size[1]} pixels: at most {MAX_SIDE} "
                          "on each side (it is shown far smaller).")
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
