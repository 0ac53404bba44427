"""The languages mail and reader pages come in: NEWSLETTER_LANGUAGES, the first the
default, each with a gettext catalogue in newsletter/translations/ (docs/languages.md)."""

from __future__ import annotations

import re
from pathlib import Path

from flask import current_app

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
SOURCE_LANGUAGE = "en"  # the language of the strings in the code: needs no catalogue
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")


def N_(message: str) -> str:
    """Marks a message for the catalogues (pybabel's N_ keyword); the page that shows
    it translates it, and the API answers with it as is."""
    return message


def parse_languages(value: str) -> tuple[str, ...]:
    """NEWSLETTER_LANGUAGES: codes, each with a compiled catalogue (but English)."""
    codes = tuple(code.strip() for code in str(value).split(",") if code.strip())
    if not codes:
        raise ValueError("expected at least one language code, e.g. en,fr")
    for code in codes:
        if not LANGUAGE_CODE.fullmatch(code):
            raise ValueError(f"expected language codes such as en, fr or pt_BR, got {code!r}")
        if code != SOURCE_LANGUAGE and not (TRANSLATIONS / code / "LC_MESSAGES"
                                            / "messages.mo").is_file():
            raise ValueError(f"there is no compiled catalogue for {code!r} "
                             f"(newsletter/translations/{code}/LC_MESSAGES/messages.mo)")
    if len(set(codes)) != len(codes):
        raise ValueError(f"a language is named twice in {value!r}")
    return codes


def languages() -> tuple[str, ...]:
    return current_app.config["LANGUAGES"]


def default_language() -> str:
    return languages()[0]


def language_of(code: str | None) -> str:
    """``code`` when it is offered (or the source language, asked for by name), else
    the default language."""
    return code if code in languages() or code == SOURCE_LANGUAGE else default_language()


def language_name(code: str) -> str:
    """A language's name in that language ("français"), for choosers."""
    from babel import Locale

    return Locale.parse(code).get_display_name(code) or code
