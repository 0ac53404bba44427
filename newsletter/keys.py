"""The keys the data depends on: which settings they are, the check every process
runs at start, and fresh values for ``flask --app newsletter keys generate``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.config import DEFAULT_SECRET_KEY, ENV_PREFIX, ConfigError

MIN_SECRET_BYTES = 32
# Every key the data depends on. ``flask --app newsletter keys generate`` prints a
# fresh value for each; none is ever generated into a file by a running service.
KEY_SETTINGS = ("SECRET_KEY", "SUPPRESSION_KEY", "BOUNCE_KEY")
GENERATE_HINT = "generate one with: flask --app newsletter keys generate"


def generate_keys() -> dict[str, str]:
    import secrets

    return {name: secrets.token_hex(32) for name in KEY_SETTINGS}


def _weak(key: object) -> bool:
    return key == DEFAULT_SECRET_KEY or len(str(key).encode()) < MIN_SECRET_BYTES


def check_keys(config: Mapping[str, Any]) -> None:
    """Outside tests, refuse a key that is missing, short or the public default,
    whatever FLASK_DEBUG says: a debug server is reachable too, and a cookie signed
    with a known key opens the editor workspace. Each refusal is one line naming the
    setting."""
    if config.get("TESTING"):
        return
    key = config.get("SECRET_KEY") or ""
    if key == DEFAULT_SECRET_KEY:
        raise ConfigError(f"{ENV_PREFIX}SECRET_KEY is not set (the built-in development key "
                          f"is refused); {GENERATE_HINT}")
    if _weak(key):
        raise ConfigError(f"{ENV_PREFIX}SECRET_KEY is {len(str(key).encode())} bytes; it needs "
                          f"at least {MIN_SECRET_BYTES} random bytes; {GENERATE_HINT}")
    _check_fallbacks(config, "SECRET_KEY_FALLBACKS")
    if not config.get("SUPPRESSION_KEY"):
        raise ConfigError(f"{ENV_PREFIX}SUPPRESSION_KEY is not set (it keeps erased addresses "
                          f"from being mailed again; use the same value on every host); "
                          f"{GENERATE_HINT}")
    if _weak(config["SUPPRESSION_KEY"]):
        raise ConfigError(f"{ENV_PREFIX}SUPPRESSION_KEY is shorter than {MIN_SECRET_BYTES} "
                          f"bytes; {GENERATE_HINT}")
    if config.get("BOUNCE_KEY") and _weak(config["BOUNCE_KEY"]):
        raise ConfigError(f"{ENV_PREFIX}BOUNCE_KEY is shorter than {MIN_SECRET_BYTES} bytes; "
                          f"{GENERATE_HINT}")
    _check_fallbacks(config, "BOUNCE_KEY_FALLBACKS")


def _check_fallbacks(config: Mapping[str, Any], name: str) -> None:
    if any(_weak(old) for old in config.get(name) or ()):
        raise ConfigError(f"{ENV_PREFIX}{name} holds a key shorter than {MIN_SECRET_BYTES} "
                          "bytes or the built-in one")
