import pytest

from newsletter.config import DEFAULT_SECRET_KEY, ConfigError
from newsletter.keys import check_keys, generate_keys


@pytest.mark.parametrize("config, message", [
    ({"SECRET_KEY": DEFAULT_SECRET_KEY}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": DEFAULT_SECRET_KEY, "DEBUG": True}, "SECRET_KEY is not set"),
    ({"SECRET_KEY": ""}, "SECRET_KEY is 0 bytes"),
    ({"SECRET_KEY": "0123456789", "DEBUG": True}, "SECRET_KEY is 10 bytes"),
    ({"SECRET_KEY": "k" * 32, "SECRET_KEY_FALLBACKS": ["short"]}, "SECRET_KEY_FALLBACKS"),
])
def test_a_weak_secret_key_is_refused_whatever_debug_says(config, message):
    with pytest.raises(ConfigError, match=message):
        check_keys(config)


def test_a_long_random_key_is_accepted_and_tests_may_use_any():
    check_keys({"SECRET_KEY": "k" * 32, "SECRET_KEY_FALLBACKS": ["o" * 40],
                "SUPPRESSION_KEY": "s" * 32})
    check_keys({"SECRET_KEY": DEFAULT_SECRET_KEY, "TESTING": True})


GOOD_KEYS = {"SECRET_KEY": "k" * 32, "SUPPRESSION_KEY": "s" * 32}


@pytest.mark.parametrize("config, setting", [
    ({"SECRET_KEY": "k" * 32}, "SUPPRESSION_KEY is not set"),
    ({"SECRET_KEY": "k" * 32, "SUPPRESSION_KEY": "", "DEBUG": True}, "SUPPRESSION_KEY is not set"),
    ({**GOOD_KEYS, "SUPPRESSION_KEY": "short"}, "SUPPRESSION_KEY is shorter"),
    ({**GOOD_KEYS, "BOUNCE_KEY": "short"}, "BOUNCE_KEY is shorter"),
    ({**GOOD_KEYS, "BOUNCE_KEY_FALLBACKS": ["b" * 32, "short"]}, "BOUNCE_KEY_FALLBACKS"),
])
def test_a_missing_or_weak_data_key_is_refused_in_one_line(config, setting):
    with pytest.raises(ConfigError, match=setting) as refused:
        check_keys(config)
    assert "\n" not in str(refused.value)
    if "BOUNCE_KEY_FALLBACKS" not in setting:
        assert "flask --app newsletter keys generate" in str(refused.value)


def test_generated_keys_are_fresh_long_and_pass_the_check():
    first, second = generate_keys(), generate_keys()
    assert set(first) == {"SECRET_KEY", "SUPPRESSION_KEY", "BOUNCE_KEY"}
    assert all(first[name] != second[name] for name in first)
    assert len(set(first.values())) == 3  # never one value for two keys
    check_keys(first)
