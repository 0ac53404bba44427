"""Render ``templates/email/<name>/{subject.txt,body.txt,body.html}`` into a message's parts."""

from __future__ import annotations

from dataclasses import dataclass

import css_inline
from flask import render_template


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def render_mail(name: str, **context) -> RenderedMail:
    subject = render_template(f"email/{name}/subject.txt", **context)
    # A subject is one line: collapse whatever whitespace a template or title left in it.
    subject = " ".join(subject.split())
    text = render_template(f"email/{name}/body.txt", **context)
    html = css_inline.inline(render_template(f"email/{name}/body.html", **context))
    return RenderedMail(subject=subject, text=text, html=html)
