"""A button's text on the owner's accent colour: whichever of black and white reads better."""

from __future__ import annotations

import pytest

from newsletter.content.site_settings import Branding


@pytest.mark.parametrize("accent, text", [
    ("", "#ffffff"),  # the default blue
    ("#1f5eff", "#ffffff"), ("#b3261e", "#ffffff"), ("#000000", "#ffffff"),
    ("#ffee00", "#111111"), ("#00ff00", "#111111"), ("#ffffff", "#111111"),
])
def test_accent_text(accent, text):
    assert Branding(accent_color=accent).accent_text == text
