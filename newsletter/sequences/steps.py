"""Writing sequences: create one, add, edit and reorder its steps, preview and test-send.

A step's sending is a long-lived issue (a ``Digest`` of kind sequence_step, started
when the step is added and never finished), so each reader's copy of a step is one
row of the same ledger digests use. Editing a step changes what readers who have
not had it yet will get; it never sends it again to anyone.
"""

from __future__ import annotations

import dataclasses
import re

from flask import current_app
from sqlalchemy import func, select

from newsletter.content import site_settings, topics
from newsletter.content.articles import InvalidArticle, body_too_big, render_markdown
from newsletter.extensions import db
from newsletter.issues import lifecycle
from newsletter.mail import verp
from newsletter.mail.links import external_url
from newsletter.mail.message import build_message
from newsletter.mail.render import RenderedMail
from newsletter.mail.transport import DeliveryResult
from newsletter.models import Digest, DigestKind, DigestStatus, Sequence, SequenceStep
from newsletter.sequences import step_links, step_mail
from newsletter.sequences.durations import DurationError, parse_duration
from newsletter.sequences.quiet_hours import WindowError, parse_window

MAX_NAME = 100
MAX_SUBJECT = 300
# C0 and C1 controls, line and paragraph separators, lone surrogates: never in a subject.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class SequenceError(ValueError):
    """Bad sequence input; the message says what to fix (one line)."""


def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or _CONTROL.search(name):
        raise SequenceError(f"A sequence's name is 1 to {MAX_NAME} characters without "
                            "control characters.")
    return name


def clean_subject(subject: str) -> str:
    if _CONTROL.search(subject or ""):
        raise SequenceError("The subject holds a control character (a line break, tab or "
                            "similar); a subject is one line of text.")
    subject = " ".join((subject or "").split())
    if not subject or len(subject) > MAX_SUBJECT:
        raise SequenceError(f"A subject is 1 to {MAX_SUBJECT} characters.")
    return subject


def body_html_of(markdown_source: str) -> str:
    """The step's sanitised HTML: the articles' Markdown renderer and limits."""
    if not (markdown_source or "").strip():
        raise SequenceError("The body is empty.")
    too_big = body_too_big(markdown_source)
    if too_big:
        raise SequenceError(too_big)
    try:
        return render_markdown(markdown_source)
    except InvalidArticle as error:
        raise SequenceError(str(error)) from None


def delay_of(text: str) -> int:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise SequenceError(str(error)) from None


def clean_translations(value: dict | None) -> dict | None:
    """{"fr": {"subject": ..., "body": Markdown}} for languages other than the default,
    each part optional (empty: the default language's) -> what the step stores."""
    offered = current_app.config["LANGUAGES"][1:]
    kept = {}
    for code, words in (value or {}).items():
        if code not in offered:
            raise SequenceError(f"Unknown language {str(code)[:16]!r} for a translation: use "
                                f"one of {', '.join(offered) or '(none but the default)'}.")
        subject = (words.get("subject") or "").strip()
        body = words.get("body") or ""
        stored = {"subject": clean_subject(subject) if subject else "",
                  "body_markdown": "", "body_html": ""}
        if body.strip():
            stored.update(body_markdown=body, body_html=body_html_of(body))
        if stored["subject"] or stored["body_markdown"]:
            kept[code] = stored
    return kept or None


def get_sequence(name: str) -> Sequence:
    sequence = db.session.scalar(select(Sequence).where(Sequence.name == str(name).strip()))
    if sequence is None:
        raise SequenceError(f"There is no sequence named {name!r}.")
    return sequence


def all_sequences() -> list[Sequence]:
    return list(db.session.scalars(select(Sequence).order_by(Sequence.name)))


def steps_of(sequence_id: int) -> list[SequenceStep]:
    return list(db.session.scalars(select(SequenceStep).where(
        SequenceStep.sequence_id == sequence_id).order_by(SequenceStep.position)))


def step_for_digest(digest_id: int) -> SequenceStep | None:
    return db.session.scalar(select(SequenceStep).where(SequenceStep.digest_id == digest_id))


def create_sequence(name: str, topic_slug: str | None = None) -> Sequence:
    """A new sequence; readers who enter from now on join it (earlier ones only by
    ``enrol_existing``)."""
    name = clean_name(name)
    topic_id = None
    if topic_slug is not None:
        topic = topics.get_topic(topic_slug.strip())
        if topic is None:
            raise SequenceError(f"There is no topic {topic_slug!r}.")
        topic_id = topic.id
    if db.session.scalar(select(Sequence.id).where(Sequence.name == name)) is not None:
        raise SequenceError(f"A sequence named {name!r} exists already.")
    sequence = Sequence(name=name, topic_id=topic_id)
    db.session.add(sequence)
    db.session.flush()
    return sequence


def add_step(name: str, after: str, subject: str, body_markdown: str,
             translations: dict | None = None) -> SequenceStep:
    """Append a step; every reader who has not passed the end of the sequence gets it.
    ``translations``: its words in other languages (``clean_translations``). Everything
    is checked before anything is written."""
    sequence = get_sequence(name)
    delay, subject, body_html = delay_of(after), clean_subject(subject), body_html_of(
        body_markdown)
    translations = clean_translations(translations)
    digest = Digest(kind=DigestKind.SEQUENCE_STEP, subject=subject, intro="",
                    status=DigestStatus.DRAFT)
    db.session.add(digest)
    db.session.flush()
    if not lifecycle.move(digest.id, lifecycle.Move.START):
        raise AssertionError("a new step's issue could not start")
    last = db.session.scalar(select(func.max(SequenceStep.position)).where(
        SequenceStep.sequence_id == sequence.id)) or 0
    step = SequenceStep(sequence_id=sequence.id, position=last + 1, delay_seconds=delay,
                        subject=subject, body_markdown=body_markdown, body_html=body_html,
                        translations=translations, digest_id=digest.id,
                        tracked_urls=step_links.trackable(
                            *step_links.bodies(body_html, translations)))
    db.session.add(step)
    db.session.flush()
    return step


_KEEP = object()


def edit_step(step_id: int, after: str, subject: str, body_markdown: str,
              translations: dict | None | object = _KEEP) -> SequenceStep:
    """New words or timing for readers who have not had the step; nobody gets it twice
    (their ledger row exists already). ``translations`` replace the step's (left out:
    kept)."""
    step = db.session.get(SequenceStep, step_id)
    if step is None:
        raise SequenceError("That step does not exist.")
    delay, subject, body_html = delay_of(after), clean_subject(subject), body_html_of(
        body_markdown)
    translations = (step.translations if translations is _KEEP
                    else clean_translations(translations))
    step_links.remember(step, step_links.bodies(body_html, translations))
    step.delay_seconds, step.subject, step.body_html = delay, subject, body_html
    step.body_markdown, step.translations = body_markdown, translations
    step.revision += 1  # workers render it afresh
    return step


def translate_step(step_id: int, language: str, subject: str, body_markdown: str
                   ) -> SequenceStep:
    """Set the step's words in one language (both empty: that language falls back to
    the default's again); an edit like any other."""
    step = db.session.get(SequenceStep, step_id)
    if step is None:
        raise SequenceError("That step does not exist.")
    translations = {code: {"subject": words["subject"], "body": words["body_markdown"]}
                    for code, words in (step.translations or {}).items()}
    translations[language] = {"subject": subject, "body": body_markdown}
    return edit_step(step_id, f"{step.delay_seconds}s", step.subject, step.body_markdown,
                     translations)


def step_at(sequence: Sequence, position: int) -> SequenceStep:
    step = db.session.scalar(select(SequenceStep).where(
        SequenceStep.sequence_id == sequence.id, SequenceStep.position == position))
    if step is None:
        raise SequenceError(f"The sequence {sequence.name!r} has no step {position}.")
    return step


def set_window(name: str, window: str | None) -> Sequence:
    """Quiet hours: steps go out only within ``window`` ("08:00-20:00"; empty: any hour)."""
    sequence = get_sequence(name)
    try:
        parsed = parse_window(window)
    except WindowError as error:
        raise SequenceError(str(error)) from None
    sequence.window_start, sequence.window_end = parsed or (None, None)
    return sequence


def move_step(step_id: int, offset: int) -> bool:
    """Swap a step with its neighbour (offset -1: earlier, +1: later); False at an end."""
    step = db.session.get(SequenceStep, step_id)
    if step is None:
        raise SequenceError("That step does not exist.")
    steps = steps_of(step.sequence_id)
    index = steps.index(step)
    other = index + offset
    if offset not in (-1, 1) or not 0 <= other < len(steps):
        return False
    steps[index].position, steps[other].position = steps[other].position, steps[index].position
    return True


def preview(step: SequenceStep, language: str | None = None) -> RenderedMail:
    # Its unsubscribe link leads to a page saying this was a test: nobody to unsubscribe.
    return step_mail.render(step, external_url("public.test_mail"), language)


def send_test(step: SequenceStep, to_email: str,
              language: str | None = None) -> DeliveryResult:
    """Send the step to one address (an editor's own), now, marked as a test."""
    rendered = preview(step, language)
    test_copy = dataclasses.replace(rendered, subject="[Test] " + rendered.subject)
    message = build_message(test_copy, mail_from=site_settings.mail_from(), to_email=to_email,
                            reply_to=site_settings.current().reply_to or None)
    return current_app.extensions["smtp"].deliver_message(
        message, verp.address_for(verp.TEST_MAIL))
