"""Render ``templates/email/<name>/{subject.txt,body.txt,body.html}`` into a message's parts."""

from __future__ import annotations

from dataclasses import dataclass

import css_inline
from flask import render_template
from flask_babel import force_locale

from newsletter.mail.language import language_of

# Rules that cannot be inlined (@media: small screens, dark mode) stay in a <style>.
INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str
    language: str = "en"  # the Content-Language of the mail


def render_mail(name: str, language: str | None = None, **context) -> RenderedMail:
    """The mail in ``language`` (a reader's; None or one not offered: the default)."""
    language = language_of(language)
    with force_locale(language):
        subject = render_template(f"email/{name}/subject.txt", language=language, **context)
        # A subject is one line: collapse whatever whitespace a template or title left in it.
        subject = " ".join(subject.split())
        text = render_template(f"email/{name}/body.txt", language=language, **context)
        # The subject is the HTML's <title> too (a page without one fails accessibility
        # checks, and some clients show it).
        html = INLINER.inline(render_template(f"email/{name}/body.html", language=language,
                                              **{"subject": subject, **context}))
    return RenderedMail(subject=subject, text=text, html=html, language=language)
