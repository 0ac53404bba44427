"""The key of editors' TOTP secrets: validated at start-up, rotatable, and derived
from SECRET_KEY only when unset."""

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from newsletter.config import ConfigError, load_settings, totp_keys

KEY, OLD = "k" * 32, "o" * 64


@pytest.mark.parametrize(("name", "value"), [
    ("NEWSLETTER_TOTP_KEY", "too-short"),
    ("NEWSLETTER_TOTP_KEY", "x" * 31),
    ("NEWSLETTER_TOTP_KEY", "spaces are not part of a key " + "x" * 10),
    ("NEWSLETTER_TOTP_KEY", "é" * 40),
    ("NEWSLETTER_TOTP_KEY_FALLBACKS", f"{OLD},short"),
])
def test_a_malformed_key_is_refused_by_name(name, value):
    with pytest.raises(ConfigError) as error:
        load_settings({name: value})
    assert name in str(error.value) and "at least 32" in str(error.value)


def test_the_key_encrypts_and_its_fallbacks_still_decrypt():
    old = load_settings({"NEWSLETTER_TOTP_KEY": OLD})
    rotated = load_settings({"NEWSLETTER_TOTP_KEY": KEY, "NEWSLETTER_TOTP_KEY_FALLBACKS": OLD})
    sealed = MultiFernet([Fernet(key) for key in totp_keys(old)]).encrypt(b"SECRET")
    keys = totp_keys(rotated)
    assert len(keys) == 2 and keys[1] == totp_keys(old)[0]
    assert MultiFernet([Fernet(key) for key in keys]).decrypt(sealed) == b"SECRET"
    with pytest.raises(InvalidToken):  # the new key alone does not open it
        Fernet(keys[0]).decrypt(sealed)


def test_unset_it_is_derived_from_secret_key_and_its_fallbacks():
    settings = {**load_settings({}), "SECRET_KEY": "s" * 40, "SECRET_KEY_FALLBACKS": ["t" * 40]}
    keys = totp_keys(settings)
    assert len(keys) == 2 and keys[0] != keys[1]
    assert keys[0] == totp_keys({**settings, "SECRET_KEY_FALLBACKS": []})[0]
