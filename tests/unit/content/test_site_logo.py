"""A logo is judged by its first bytes: the four raster formats mail clients show."""

from __future__ import annotations

import pytest

from newsletter.content.site_logo import MAX_BYTES, InvalidLogo, check, image_type
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
