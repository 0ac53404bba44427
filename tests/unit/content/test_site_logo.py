"""A logo is judged by its first bytes: the four raster formats mail clients show."""

from __future__ import annotations

import struct

import pytest

from newsletter.content.site_logo import MAX_BYTES, InvalidLogo, check, dimensions, image_type
from tests.helpers import tiny_png


@pytest.mark.parametrize("data, expected", [
    (tiny_png(), "image/png"),
    (b"\xff\xd8\xff\xdb" + b"\x00" * 8, "image/jpeg"),
    (b"GIF87a" + b"\x00" * 8, "image/gif"),
    (b"GIF89a" + b"\x00" * 8, "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # RIFF, but sound
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', None),
    (b"\xef\xbb\xbf<svg/>", None),
    (b"BM" + b"\x00" * 20, None),  # BMP: not for mail
    (b"\x89PNG", None),  # a truncated signature
    (b"", None),
])
def test_image_type_by_magic_bytes(data, expected):
    assert image_type(data) == expected


def test_the_cap_is_inclusive():
    png = tiny_png()
    assert check(png + b"\x00" * (MAX_BYTES - len(png))) == "image/png"
    with pytest.raises(InvalidLogo, match="over 512 KB"):
        check(png + b"\x00" * (MAX_BYTES - len(png) + 1))


def webp(kind: bytes, payload: bytes) -> bytes:
    return b"RIFF\x00\x00\x00\x00WEBP" + kind + struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize("data, content_type, expected", [
    (tiny_png(96, 24), "image/png", (96, 24)),
    (b"GIF89a\x40\x01\x20\x00" + b"\x00" * 3, "image/gif", (320, 32)),
    # JPEG: an APP0 segment is skipped, the frame header (SOF2, progressive) read.
    (b"\xff\xd8\xff\xe0\x00\x04\x00\x00\xff\xc2\x00\x0b\x08\x00\x18\x00\x60\x01\x01\x11\x00",
     "image/jpeg", (96, 24)),
    (b"\xff\xd8\xff\xc4\x00\x02\xff\xda\x00\x02", "image/jpeg", None),  # a scan, no frame
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg", None),  # cut short
    (webp(b"VP8X", b"\x00" * 4 + (95).to_bytes(3, "little") + (23).to_bytes(3, "little")),
     "image/webp", (96, 24)),
    (webp(b"VP8L", b"\x2f" + struct.pack("<I", 95 | 23 << 14)), "image/webp", (96, 24)),
    (webp(b"VP8 ", b"\x00" * 3 + b"\x9d\x01\x2a" + struct.pack("<HH", 96, 24)),
     "image/webp", (96, 24)),
    (webp(b"VP8 ", b"\x00" * 3), "image/webp", None),
    (b"\x89PNG\r\n\x1a\n", "image/png", None),
])
def test_dimensions_come_from_the_header(data, content_type, expected):
    assert dimensions(data, content_type) == expected


def test_a_huge_image_in_a_small_file_is_refused():
    header = struct.pack(">II", 4097, 16)
    png = tiny_png(16, 16)
    bomb = png[:16] + header + png[24:]
    with pytest.raises(InvalidLogo, match="4097×16 pixels: at most 4096"):
        check(bomb)
    assert check(png[:16] + struct.pack(">II", 4096, 4096) + png[24:]) == "image/png"
