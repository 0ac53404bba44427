"""Content-Language values come from catalogue codes, and nothing else gets through."""

import pytest

from newsletter.mail.headers import language_tag


@pytest.mark.parametrize("code, tag", [("fr", "fr"), ("pt_BR", "pt-BR"), ("ast", "ast")])
def test_catalogue_codes_become_language_tags(code, tag):
    assert language_tag(code) == tag


@pytest.mark.parametrize("code", ["", "fr\r\nBcc: x@example.com", "FR", "fr-br", "f", "x" * 20])
def test_anything_else_is_refused(code):
    with pytest.raises(ValueError, match="not a language code"):
        language_tag(code)
