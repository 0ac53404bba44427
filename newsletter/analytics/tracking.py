"""Rewriting a rendered mail's article links to tracked links, once per variant.

Any renderer can call ``track``: it takes the rendered mail and the links to track
(url -> link number) and returns the mail whose hrefs point at ``BASE_URL/r/...``,
with a marker where each recipient's copy token goes; ``CopyTokens`` makes that
token per recipient (``mail/bulk.py`` substitutes it, as it does the unsubscribe URL).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from flask import current_app

from newsletter.mail.click_links import (
    OPEN_PIXEL,
    LinkSigner,
    random_copy_number,
    rewrite_html,
    rewrite_text,
)
from newsletter.mail.links import external_url
from newsletter.mail.render import RenderedMail
from newsletter.models import Digest, DigestKind
from newsletter.sequences import step_links


def new_copy_marker() -> str:
    """A string no article will contain, standing for a recipient's copy token."""
    return f"COPY-{secrets.token_hex(12)}"


def signer() -> LinkSigner:
    """Signs with SECRET_KEY; links signed with a SECRET_KEY_FALLBACKS key still read."""
    config = current_app.config
    secrets_now = (config["SECRET_KEY"], *config["SECRET_KEY_FALLBACKS"])
    cached = current_app.extensions.get("link_signer")
    if cached is None or cached[0] != secrets_now:  # derived once per process and key set
        cached = current_app.extensions["link_signer"] = (secrets_now, LinkSigner(secrets_now))
    return cached[1]


def issue_links(digest: Digest) -> dict[str, int]:
    """The links of an issue that are tracked (URL -> link number): each article's URL,
    numbered by its id; in a sequence step, the links of its body that leave the site."""
    if digest.kind == DigestKind.SEQUENCE_STEP:
        step = step_links.step_of(digest.id)
        return step_links.numbered(step) if step is not None else {}
    return {article.url: article.id for article in digest.articles}


def link_targets(digest: Digest) -> dict[int, str]:
    """Every link number a copy of the issue may carry -> where it goes (for a step,
    also the links an edit has since taken out: copies sent before still have them)."""
    if digest.kind == DigestKind.SEQUENCE_STEP:
        step = step_links.step_of(digest.id)
        return step_links.targets(step) if step is not None else {}
    return {link: url for url, link in issue_links(digest).items()}


def enabled() -> bool:
    return bool(current_app.config["TRACK_CLICKS"])


def tracks_readers() -> bool:
    """Copies made now carry the reader's id in their tracked links."""
    return enabled() and bool(current_app.config["TRACK_READERS"])


def track(rendered: RenderedMail, digest_id: int, variant_id: int | None,
          links: Mapping[str, int], copy_marker: str) -> RenderedMail:
    """``rendered`` with each of ``links`` pointing at its tracked link."""
    link_signer = signer()
    base = external_url("analytics.follow_link", link_token="L", copy_token="C")
    prefix = base[:-len("L/C")]
    tokens = {link: link_signer.link_token(digest_id, variant_id, link)
              for link in set(links.values())}

    def href_for(link: int) -> str:
        return f"{prefix}{tokens[link]}/{copy_marker}"

    body = rewrite_html(rendered.html, links, href_for)
    if current_app.config["TRACK_OPENS"]:
        pixel = (f'{external_url("analytics.open_pixel", link_token="L", copy_token="C")[:-3]}'
                 f'{link_signer.link_token(digest_id, variant_id, OPEN_PIXEL)}/{copy_marker}')
        image = f'<img src="{pixel}" width="1" height="1" alt="" style="display:block">'
        at = body.lower().rfind("</body>")
        body = body[:at] + image + body[at:] if at >= 0 else body + image
    return RenderedMail(subject=rendered.subject,
                        text=rewrite_text(rendered.text, links, href_for), html=body,
                        language=rendered.language)


class CopyTokens:
    """Per recipient: a fresh random copy number, the time of sending, and the reader's
    id only when TRACK_READERS is on."""

    def __init__(self, digest_id: int):
        self.sign = signer().copy_signer(digest_id)
        self.with_reader = tracks_readers()

    def __call__(self, subscriber_id: int) -> bytes:
        return self.sign(random_copy_number(), int(time.time()),
                         subscriber_id if self.with_reader else None)
