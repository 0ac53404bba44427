"""What a reader chooses as they subscribe: topics, cadence, language and time zone.

Checked when the request is recorded (a bad value is refused before anything is
written) and applied when a worker decides it, only to a reader not yet confirmed:
nobody can change an active reader's choices by asking to subscribe them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

from flask import current_app
from sqlalchemy import select

from newsletter.content.topics import (
    TopicError,
    parse_cadence,
    parse_offered_cadence,
    set_reader_topics,
    topics_by_slugs,
)
from newsletter.extensions import db
from newsletter.mail.language import N_
from newsletter.models import Cadence, Subscriber, Topic

MAX_TOPICS_CHOSEN = 100
MAX_ZONE = 64


class ChoiceError(TopicError):
    """A language or time zone that is not offered (a TopicError, so every form and
    endpoint that refuses a bad topic refuses these the same way). Keeps the message's
    catalogue form and its values, so a reader's page can translate it."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values)
        self.message = message
        self.values = values


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: object) -> str:
    """An IANA time zone name as the zone database spells it, e.g. Europe/Paris."""
    if not isinstance(value, str) or len(value) > MAX_ZONE or value.strip() not in _zones():
        shown = repr(value[:MAX_ZONE]) if isinstance(value, str) else "this value"
        raise ChoiceError(N_("Unknown time zone %(zone)s: use an IANA name such as "
                             "Europe/Paris."), zone=shown)
    return value.strip()


def check_language(value: object) -> str:
    """One of NEWSLETTER_LANGUAGES."""
    offered = current_app.config["LANGUAGES"]
    if not isinstance(value, str) or value.strip() not in offered:
        shown = repr(value[:16]) if isinstance(value, str) else "this value"
        raise ChoiceError(N_("Unknown language %(language)s: choose one of %(offered)s."),
                          language=shown, offered=", ".join(offered))
    return value.strip()


def request_values(*, topics: object = None, cadence: object = None, timezone: object = None,
                   language: object = None) -> dict:
    """The choices as a subscribe request's columns (None: not asked); raises
    TopicError or ChoiceError."""
    return {"topics": _chosen_topics(topics),
            "cadence": None if cadence is None else _chosen_cadence(cadence),
            "timezone": None if timezone in (None, "") else check_timezone(timezone),
            "language": None if language in (None, "") else check_language(language)}


def _chosen_topics(topics: object) -> str | None:
    if topics is None:
        return None
    if not isinstance(topics, list | tuple) or not all(isinstance(t, str) for t in topics):
        raise TopicError("Topics are a list of topic slugs.")
    if len(topics) > MAX_TOPICS_CHOSEN:
        raise TopicError(f"Choose at most {MAX_TOPICS_CHOSEN} topics.")
    return " ".join(topic.slug for topic in topics_by_slugs(topics))


def _chosen_cadence(cadence: object) -> str:
    if not isinstance(cadence, str):
        raise TopicError("Cadence must be 'weekly' or 'daily'.")
    return parse_offered_cadence(cadence).value


@dataclass(frozen=True)
class Choices:
    topics: list[Topic] | None
    cadence: Cadence | None
    timezone: str | None
    language: str | None
    detail: str | None  # what the consent log says about them


def of_request(request) -> Choices:
    """A recorded request's choices, as they are now (a topic removed since, a zone or
    language no longer offered, is left out)."""
    said, chosen, cadence = [], None, None
    if request.topics is not None:
        chosen = list(db.session.scalars(
            select(Topic).where(Topic.slug.in_(request.topics.split()))
            .order_by(Topic.position, Topic.id)))
        said.append("topics: " + (", ".join(topic.slug for topic in chosen) or "all"))
    if request.cadence is not None:
        cadence = parse_cadence(request.cadence)
        said.append(f"cadence: {cadence.value}")
    zone = request.timezone if request.timezone in _zones() else None
    if zone:
        said.append(f"time zone: {zone}")
    language = (request.language if request.language in current_app.config["LANGUAGES"]
                else None)
    if language:
        said.append(f"language: {language}")
    return Choices(chosen, cadence, zone, language, "; ".join(said) or None)


def apply(subscriber: Subscriber, choices: Choices) -> None:
    """A reader not yet confirmed takes the choices their request made."""
    if choices.topics is not None:
        set_reader_topics(subscriber, choices.topics)
    if choices.cadence is not None:
        subscriber.cadence = choices.cadence
    if choices.timezone is not None:
        subscriber.timezone = choices.timezone
    if choices.language is not None:
        subscriber.language = choices.language
