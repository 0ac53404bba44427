"""Which links of a sequence step are tracked, and each one's number.

A step's tracked links are the links of its bodies (one per language) that lead away
from this site (the site's own pages, unsubscribing and preferences among them, are
never tracked). Their
URLs are kept on the step in order, a link's number being its place + 1; an edit only
appends the URLs it brings, so a link in a copy sent before the edit keeps its number
and keeps redirecting.
"""

from __future__ import annotations

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.mail.click_links import web_links
from newsletter.mail.links import is_own_site
from newsletter.models import SequenceStep


def step_of(digest_id: int) -> SequenceStep | None:
    """The step whose sending is this issue."""
    return db.session.scalar(select(SequenceStep).where(SequenceStep.digest_id == digest_id))


# Edits only append, so a step edited without end could grow its list without end:
# past this many URLs, links an edit brings go out untracked (straight to their page).
MAX_TRACKED_URLS = 500


def trackable(*bodies_html: str) -> list[str]:
    """The links leaving the site in these bodies (a step's, one per language), in
    order, each once."""
    found = [url for body in bodies_html for url in web_links(body) if not is_own_site(url)]
    return list(dict.fromkeys(found))


def bodies(body_html: str, translations: dict | None) -> list[str]:
    """A step's body in each of its languages."""
    return [body_html] + [words["body_html"] for words in (translations or {}).values()
                          if words.get("body_html")]


def urls_of(step: SequenceStep) -> list[str]:
    """Every URL the step's tracked links have pointed at, in number order."""
    return list(step.tracked_urls) if step.tracked_urls is not None else trackable(
        *bodies(step.body_html, step.translations))


def remember(step: SequenceStep, new_bodies_html: list[str]) -> None:
    """Before the step's bodies (one per language) become ``new_bodies_html``: add the
    links they bring."""
    known = urls_of(step)
    new = [url for url in trackable(*new_bodies_html) if url not in known]
    step.tracked_urls = known + new[:max(0, MAX_TRACKED_URLS - len(known))]


def numbered(step: SequenceStep) -> dict[str, int]:
    """The links to track in the step as it reads now: URL -> link number."""
    current = set(trackable(*bodies(step.body_html, step.translations)))
    return {url: number for number, url in enumerate(urls_of(step), start=1)
            if url in current}


def targets(step: SequenceStep) -> dict[int, str]:
    """Every link number the step's copies may carry -> its URL."""
    return {number: url for number, url in enumerate(urls_of(step), start=1)}
