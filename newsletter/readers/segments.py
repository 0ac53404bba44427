"""Segments: saved, named conditions over reader fields, ANDed.

A condition is ``{"field": ..., "op": ..., "value": ...}`` (plus ``"key"`` for a
custom attribute). Each field and its operators come from the whitelist below, and
each becomes a SQLAlchemy expression with the value bound as a parameter: nothing a
user types is ever SQL. Conditions are checked when a segment is saved and again
when it is read (a topic deleted since is refused by name, never ignored).

Engagement ("clicked within N days") needs per-reader click data, which the click
analytics keeps only with ``NEWSLETTER_TRACK_READERS``; without it a segment naming
clicks is refused with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.exc import IntegrityError

from newsletter.extensions import db
from newsletter.models import (
    Cadence,
    Click,
    ClickKind,
    ConsentEvent,
    ConsentSource,
    Digest,
    Segment,
    Subscriber,
    SubscriberStatus,
    Topic,
    Verdict,
    subscriber_topics,
    utcnow,
)
from newsletter.readers import choices

NAME = re.compile(r"[\w][\w .-]{0,99}")
ATTRIBUTE_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_CONDITIONS = 20
MAX_VALUE = 200
MAX_CLICK_DAYS = 3650


class SegmentError(ValueError):
    """A segment or a condition that cannot be used; the message says why."""


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE:
        raise SegmentError(f"{what} must be a text of 1 to {MAX_VALUE} characters.")
    if any(ord(char) < 32 for char in value):
        raise SegmentError(f"{what} holds a control character.")
    return value.strip()


def _day(value, what: str) -> str:
    try:
        return date.fromisoformat(_text(value, what)).isoformat()
    except ValueError:
        raise SegmentError(f"{what} must be a date, YYYY-MM-DD.") from None


def _days(value, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CLICK_DAYS:
        raise SegmentError(f"{what} must be a whole number of days from 1 to {MAX_CLICK_DAYS}.")
    return value


def _choice(choices: tuple[str, ...]):
    def check(value, what: str) -> str:
        value = _text(value, what).lower()
        if value not in choices:
            raise SegmentError(f"{what} must be one of: {', '.join(choices)}.")
        return value
    return check


def _language(value, what: str) -> str:
    code = _text(value, what)
    offered = current_app.config["LANGUAGES"]
    if code not in offered:
        raise SegmentError(f"{what} must be one of: {', '.join(offered)}.")
    return code


def _zone(value, what: str) -> str:
    try:
        return choices.check_timezone(_text(value, what))
    except choices.ChoiceError as error:
        raise SegmentError(f"{what}: {error}") from None


def _language_expression(op: str, code: str, _key) -> ColumnElement:
    # A reader without a language reads the default one.
    reads = Subscriber.language == code
    if code == current_app.config["LANGUAGES"][0]:
        reads = reads | Subscriber.language.is_(None)
    return reads if op == "is" else ~reads


def _topic(value, what: str) -> str:
    return _text(value, what).lower()  # looked up when the expression is built


# A condition's start: coalesce, since readers imported as confirmed may lack one.
def _subscribed_at():
    return func.coalesce(Subscriber.confirmed_at, Subscriber.created_at)


def _day_start(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)


def _topic_expression(op: str, slug: str, _key) -> ColumnElement:
    topic_id = db.session.scalar(select(Topic.id).where(Topic.slug == slug))
    if topic_id is None:
        raise SegmentError(f"There is no topic {slug!r}.")
    chose = exists().where(subscriber_topics.c.subscriber_id == Subscriber.id,
                           subscriber_topics.c.topic_id == topic_id)
    # A reader who chose no topic gets everything, so they read this one too.
    chose_none = ~exists().where(subscriber_topics.c.subscriber_id == Subscriber.id)
    reads = chose | chose_none
    return reads if op == "is" else ~reads


def _first_source():
    return (select(ConsentEvent.source).where(ConsentEvent.subscriber_id == Subscriber.id)
            .order_by(ConsentEvent.id).limit(1).scalar_subquery())


def _clicked(op: str, days: int, _key) -> ColumnElement:
    if not current_app.config["TRACK_READERS"]:
        raise SegmentError("Clicks are not recorded per reader on this installation "
                           "(NEWSLETTER_TRACK_READERS), so a segment cannot use "
                           "\"clicked within\".")
    # Human clicks only: a link checker opening every link is not engagement.
    return Subscriber.id.in_(
        select(Click.subscriber_id).where(
            Click.kind == ClickKind.CLICK, Click.verdict == Verdict.HUMAN,
            Click.subscriber_id.is_not(None), Click.at >= utcnow() - timedelta(days=days)))


def _attribute(op: str, value, key: str) -> ColumnElement:
    cell = Subscriber.attributes[key].as_string()
    if op == "exists":
        return cell.is_not(None)
    return cell == value if op == "is" else (cell.is_(None) | (cell != value))


@dataclass(frozen=True)
class Field:
    label: str
    ops: tuple[str, ...]
    check: Callable  # (value, what) -> the stored value
    expression: Callable  # (op, value, key) -> a WHERE clause


def _column_is(column):
    return lambda op, value, _key: column == value if op == "is" else column != value


FIELDS: dict[str, Field] = {
    "topic": Field("Topic", ("is", "is_not"), _topic, _topic_expression),
    "language": Field("Language", ("is", "is_not"), _language, _language_expression),
    "timezone": Field("Time zone", ("is", "is_not"), _zone,
                      lambda op, value, _key: (Subscriber.timezone == value if op == "is"
                                               else Subscriber.timezone.is_(None)
                                               | (Subscriber.timezone != value))),
    "cadence": Field("Cadence", ("is",), _choice(tuple(c.value for c in Cadence)),
                     lambda op, value, _key: Subscriber.cadence == Cadence(value)),
    "subscribed": Field(
        "Subscribed", ("after", "before"), _day,
        lambda op, value, _key: (_subscribed_at() >= _day_start(value) if op == "after"
                                 else _subscribed_at() < _day_start(value))),
    "source": Field("Came from", ("is", "is_not"),
                    _choice(tuple(s.value for s in ConsentSource)),
                    lambda op, value, _key: (_first_source() == ConsentSource(value)
                                             if op == "is"
                                             else _first_source() != ConsentSource(value))),
    "clicked": Field("Clicked within (days)", ("within",), _days, _clicked),
    "attribute": Field("Imported attribute", ("is", "is_not", "exists"),
                       lambda value, what: _text(value, what), _attribute),
}


def check_conditions(conditions) -> list[dict]:
    """The conditions as stored, each checked against the whitelist; SegmentError
    names the first one that is not acceptable."""
    if not isinstance(conditions, list) or not conditions:
        raise SegmentError("A segment needs at least one condition.")
    if len(conditions) > MAX_CONDITIONS:
        raise SegmentError(f"At most {MAX_CONDITIONS} conditions.")
    checked = []
    for number, condition in enumerate(conditions, 1):
        if not isinstance(condition, dict):
            raise SegmentError(f"Condition {number} is not an object.")
        field = FIELDS.get(condition.get("field"))  # type: ignore[arg-type]
        if field is None:
            raise SegmentError(f"Condition {number}: the field must be one of: "
                               f"{', '.join(FIELDS)}.")
        op = condition.get("op")
        if op not in field.ops:
            raise SegmentError(f"Condition {number} ({condition['field']}): the operator must "
                               f"be one of: {', '.join(field.ops)}.")
        entry = {"field": condition["field"], "op": op}
        if condition["field"] == "attribute":
            key = condition.get("key")
            if not isinstance(key, str) or not ATTRIBUTE_KEY.fullmatch(key):
                raise SegmentError(f"Condition {number}: an attribute's name is lowercase "
                                   "letters, digits and _ (up to 40).")
            entry["key"] = key
        if op != "exists":
            entry["value"] = field.check(condition.get("value"),
                                         f"Condition {number} ({field.label})")
        checked.append(entry)
    return checked


def where(conditions: list[dict]) -> list[ColumnElement]:
    """The WHERE clauses of the conditions (re-checked: stored JSON is data too);
    SegmentError when one cannot be built (a topic that does not exist)."""
    return [FIELDS[condition["field"]].expression(condition["op"], condition.get("value"),
                                                  condition.get("key"))
            for condition in check_conditions(conditions)]


def segment_where(segment: Segment) -> list[ColumnElement]:
    """A saved segment's WHERE clauses; SegmentError naming the segment when it can no
    longer be used (e.g. its topic was deleted since): refused, never ignored."""
    try:
        return where(segment.conditions)
    except SegmentError as error:
        raise SegmentError(f"The segment {segment.name!r} cannot be used: {error}") from None


def check_name(name) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name.strip()):
        raise SegmentError("A segment's name is 1 to 100 letters, digits, spaces, '.', '-' "
                           "or '_', starting with a letter or digit.")
    return name.strip()


def create(name: str, conditions) -> Segment:
    """A new segment, flushed; SegmentError for a bad name or condition, or a name
    taken already."""
    segment = Segment(name=check_name(name), conditions=check_conditions(conditions))
    where(segment.conditions)  # every expression builds (a click field needs a source)
    if by_name(segment.name) is not None:
        raise SegmentError(f"There is a segment named {segment.name!r} already.")
    db.session.add(segment)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise SegmentError(f"There is a segment named {segment.name!r} already.") from None
    return segment


def by_name(name: str) -> Segment | None:
    return db.session.scalar(select(Segment).where(Segment.name == name.strip()))


def find(name: str) -> Segment:
    segment = by_name(name) if isinstance(name, str) else None
    if segment is None:
        raise SegmentError(f"There is no segment named {str(name)[:100]!r}.")
    return segment


def all_segments() -> list[Segment]:
    return list(db.session.scalars(select(Segment).order_by(Segment.name)))


def delete(segment_id: int) -> bool:
    """Remove a segment no issue names (an issue's report keeps saying its segment)."""
    segment = db.session.get(Segment, segment_id)
    if segment is None:
        return False
    if db.session.scalar(select(func.count()).where(Digest.segment_id == segment_id)):
        raise SegmentError(f"Issues went to {segment.name!r}: it is kept for their reports.")
    db.session.delete(segment)
    return True


def count(conditions: list[dict]) -> int:
    """How many active readers meet the conditions now."""
    return _count(where(conditions))


def segment_count(segment: Segment) -> int:
    """How many active readers a saved segment holds now."""
    return _count(segment_where(segment))


def _count(clauses: list[ColumnElement]) -> int:
    return db.session.scalar(select(func.count()).select_from(Subscriber).where(
        Subscriber.status == SubscriberStatus.ACTIVE, *clauses))


def describe(conditions: list[dict]) -> str:
    """The conditions in words, for lists and reports."""
    parts = []
    for condition in conditions:
        field = FIELDS.get(condition.get("field"))
        label = field.label if field else str(condition.get("field"))
        if condition.get("key"):
            label += f" {condition['key']}"
        op = str(condition.get("op", "")).replace("_", " ")
        value = condition.get("value")
        parts.append(f"{label} {op}" + (f" {value}" if value is not None else ""))
    return " and ".join(parts)
