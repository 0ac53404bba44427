"""A sequence step as a mail: its Markdown body in the site's mail layout."""

from __future__ import annotations

from newsletter.content import site_settings
from newsletter.mail.render import RenderedMail, render_mail
from newsletter.models import SequenceStep


def render(step: SequenceStep, unsubscribe_url: str) -> RenderedMail:
    """The step as its readers get it. Its HTML was rendered and sanitised when the step
    was saved; the text part is the Markdown itself, which reads as plain text."""
    site = site_settings.current()
    return render_mail(
        "sequence_step",
        subject=step.subject,
        body_html=step.body_html,
        body_text=step.body_markdown.strip(),
        site_name=site.site_name,
        postal_address=site.postal_address,
        unsubscribe_url=unsubscribe_url,
    )
