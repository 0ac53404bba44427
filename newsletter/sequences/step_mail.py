"""A sequence step as a mail: its Markdown body in the site's mail layout, in a
reader's language."""

from __future__ import annotations

from newsletter.content import site_settings
from newsletter.mail.language import language_of
from newsletter.mail.render import RenderedMail, render_mail
from newsletter.models import SequenceStep


def words_in(step: SequenceStep, language: str | None) -> tuple[str, str, str]:
    """The step's subject, Markdown and HTML body in ``language``: the editor's words
    for it, each part falling back to the default language's."""
    words = (step.translations or {}).get(language_of(language)) or {}
    if words.get("body_markdown"):
        body = (words["body_markdown"], words["body_html"])
    else:
        body = (step.body_markdown, step.body_html)
    return words.get("subject") or step.subject, *body


def render(step: SequenceStep, unsubscribe_url: str,
           language: str | None = None) -> RenderedMail:
    """The step as its readers of ``language`` get it (None: the default language), once
    per language. Its HTML was rendered and sanitised when the step was saved; the text
    part is the Markdown itself, which reads as plain text."""
    site = site_settings.current()
    subject, body_markdown, body_html = words_in(step, language)
    return render_mail(
        "sequence_step",
        language=language,
        subject=subject,
        body_html=body_html,
        body_text=body_markdown.strip(),
        site_name=site.site_name,
        postal_address=site.postal_address,
        unsubscribe_url=unsubscribe_url,
    )
