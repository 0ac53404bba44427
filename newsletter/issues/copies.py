"""Each reader's copy of an issue: only their topics, only what they have not had.

When a send starts, the ledger gets one row per reader of the issue's audience,
written in chunks (keyset by subscriber id) so memory stays flat however long the
list. Readers whose copies come out the same (same topics, same articles already
received) share a *variant*: rendered once, its rows next to each other in the
ledger so a batch mostly needs one rendering. A reader with nothing new, or on a
pause, gets a ``skipped`` row that says why.

"Already received" is set-based: the earlier issues that carried any of this
issue's articles, their variants, and one query per chunk of readers for which of
those copies each reader was sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import force_locale, ngettext
from sqlalchemy import func, select

from newsletter.content import site_settings
from newsletter.delivery import ledger
from newsletter.extensions import db
from newsletter.issues.schedule import parse_schedule
from newsletter.issues.waves import Waves
from newsletter.mail.headers import clean_text
from newsletter.mail.language import default_language, language_of
from newsletter.models import (
    Article,
    Cadence,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    DigestVariant,
    Segment,
    Subscriber,
    SubscriberStatus,
    Topic,
    article_topics,
    digest_articles,
    subscriber_topics,
)
from newsletter.readers import segments

LEDGER_CHUNK = 5000  # readers read, planned and inserted at a time
NOTHING_NEW = "skipped: nothing new for you"
# A row with one of these never brought its articles to the reader.
NOT_RECEIVED = (DeliveryStatus.SKIPPED, DeliveryStatus.FAILED)


def audience(cadence: Cadence | None, segment: Segment | None = None) -> list:
    """Who an issue is for: every active reader for an issue sent by hand, the readers
    of its cadence for a scheduled one (daily readers get the weekly issue while there
    is no daily schedule); of those, only the segment's when it goes to one
    (SegmentError when the segment can no longer be built, e.g. its topic is gone)."""
    conditions = [Subscriber.status == SubscriberStatus.ACTIVE]
    if segment is not None:
        conditions += segments.segment_where(segment)
    if cadence is Cadence.DAILY:
        conditions.append(Subscriber.cadence == Cadence.DAILY)
    elif cadence is Cadence.WEEKLY and current_app.config["DAILY_SCHEDULE"]:
        conditions.append(Subscriber.cadence == Cadence.WEEKLY)
    return conditions


MAX_SUBJECT = 300  # the subject column's length


def cut_at_word(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: whole, or cut after the last whole word
    that fits, with "…" (a single word longer than half the room is cut inside)."""
    if len(text) <= limit:
        return text
    room = text[:limit - 1]
    space = room.rfind(" ")
    if space > limit // 2:
        room = room[:space]
    return room.rstrip(" ,;:.-–—") + "…"


def default_subject(articles: list[Article]) -> str:
    """"SITE: first title" (and "and N more"), the title cut at a word so the count and
    the site's name always show; in the current locale (a copy's subject is planned in
    its readers' language)."""
    site = site_settings.current().site_name
    head = f"{site}: "
    tail = "" if len(articles) == 1 else " " + ngettext(
        "and %(num)d more", "and %(num)d more", len(articles) - 1)
    title = clean_text(articles[0].title)
    room = MAX_SUBJECT - len(head) - len(tail)
    if room > 20:
        title = cut_at_word(title, room)
    return cut_at_word(head + title + tail, MAX_SUBJECT)


def clean_subject(text: str) -> str:
    return cut_at_word(clean_text(text), MAX_SUBJECT)


def sections(articles: list[Article], topic_ids: Iterable[int],
             topics_of: dict[int, set[int]], topics: list[Topic]) -> list[tuple[str, list]]:
    """The sections of a copy, in reading order. No topic choice: today's sections (by
    first category). Otherwise one section per chosen topic, in topic order, each
    article under the first of the reader's topics it is in."""
    grouped: dict[str, list[Article]] = defaultdict(list)
    chosen = [topic for topic in topics if topic.id in set(topic_ids)]
    for article in articles:
        if not chosen:
            grouped[article.categories[0] if article.categories else "More"].append(article)
            continue
        home = next((topic.name for topic in chosen if topic.id in topics_of.get(article.id, ())),
                    "More")  # refiled since the ledger was written: still shown
        grouped[home].append(article)
    if chosen:  # headings in topic order, whatever order the articles came in
        order = [topic.name for topic in chosen] + ["More"]
        return sorted(grouped.items(), key=lambda item: order.index(item[0]))
    return list(grouped.items())


def topics_of(article_ids: Iterable[int]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = defaultdict(set)
    for article_id, topic_id in db.session.execute(
        select(article_topics.c.article_id, article_topics.c.topic_id)
        .where(article_topics.c.article_id.in_(list(article_ids)))
    ):
        found[article_id].add(topic_id)
    return found


def ordered_topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.position, Topic.id)))


@dataclass
class Copy:
    """What one variant holds, ready to render."""

    subject: str
    sections: list[tuple[str, list[Article]]]


def copy_of(digest: Digest, variant: DigestVariant | None) -> Copy:
    """A variant's subject and sections; None (rows written before variants): the whole
    issue as it always was."""
    if variant is None:
        return Copy(digest.subject, sections(digest.articles, (), {}, []))
    by_id = {article.id: article for article in digest.articles}
    articles = [by_id[article_id] for article_id in variant.article_ids if article_id in by_id]
    return Copy(variant.subject, sections(articles, variant.topic_ids,
                                          topics_of(variant.article_ids), ordered_topics()))


class Planner:
    """Decides each reader's variant of one issue, creating variants as they appear."""

    def __init__(self, digest: Digest):
        self.digest = digest
        self.articles = list(digest.articles)  # oldest first, as the issue shows them
        self.article_ids = frozenset(article.id for article in self.articles)
        self.topics_of = topics_of(self.article_ids)
        self.topics = ordered_topics()
        # An editor's own subject goes on every copy; otherwise each copy's subject
        # names its own top article.
        with force_locale(default_language()):
            self.custom_subject = (digest.subject != clean_subject(default_subject(self.articles))
                                   if self.articles else True)
        self.variants: dict[tuple, int | None] = {}
        self.earlier_issues, self.copies, self.whole_issues = self._earlier_copies()

    def _earlier_copies(self):
        """Earlier issues that carried any of these articles, and what of them each of
        their copies held (a row with no variant had the whole issue)."""
        # A cancelled issue is not counted: its articles are free again and a new issue
        # carries them to everyone (as "send now" after a cancel always did).
        earlier = list(db.session.scalars(
            select(digest_articles.c.digest_id).distinct()
            .join(Digest, Digest.id == digest_articles.c.digest_id)
            .where(digest_articles.c.article_id.in_(self.article_ids),
                   digest_articles.c.digest_id != self.digest.id,
                   Digest.status != DigestStatus.CANCELLED)))
        copies: dict[int, frozenset[int]] = {}
        whole: dict[int, set[int]] = defaultdict(set)
        if earlier:
            for variant_id, article_ids in db.session.execute(
                select(DigestVariant.id, DigestVariant.article_ids)
                .where(DigestVariant.digest_id.in_(earlier))
            ):
                copies[variant_id] = self.article_ids.intersection(article_ids)
            for digest_id, article_id in db.session.execute(
                select(digest_articles.c.digest_id, digest_articles.c.article_id)
                .where(digest_articles.c.digest_id.in_(earlier),
                       digest_articles.c.article_id.in_(self.article_ids))
            ):
                whole[digest_id].add(article_id)
        return earlier, copies, whole

    def received(self, first: int, last: int) -> dict[int, set[int]]:
        """Which of this issue's articles each reader with an id in [first, last] was
        sent already: one query for the whole chunk."""
        had: dict[int, set[int]] = defaultdict(set)
        if not self.earlier_issues:
            return had
        for subscriber_id, digest_id, variant_id in db.session.execute(
            select(Delivery.subscriber_id, Delivery.digest_id, Delivery.variant_id)
            .where(Delivery.digest_id.in_(self.earlier_issues),
                   Delivery.subscriber_id.between(first, last),
                   Delivery.status.not_in(NOT_RECEIVED))
        ):
            had[subscriber_id].update(self.copies.get(variant_id, ()) if variant_id is not None
                                      else self.whole_issues.get(digest_id, ()))
        return had

    def variant_for(self, topic_ids: tuple[int, ...], seen: frozenset[int],
                    language: str | None = None) -> int | None:
        """The variant of a reader of these topics and this language who had ``seen``;
        None: nothing new."""
        language = language_of(language)
        key = (topic_ids, seen, language)
        if key not in self.variants:
            self.variants[key] = self._new_variant(topic_ids, seen, language)
        return self.variants[key]

    def _new_variant(self, topic_ids: tuple[int, ...], seen: frozenset[int],
                     language: str) -> int | None:
        # The editor's subject in this language, else their own subject, else the copy's.
        translated = ((self.digest.translations or {}).get(language) or {}).get("subject")
        subject = translated or (self.digest.subject if self.custom_subject else None)
        variant = plan_copy(self.digest, [a for a in self.articles if a.id not in seen
                                          and a.language in (None, language)],
                            topic_ids, self.topics_of, self.topics, subject, language)
        if variant is None:
            return None
        db.session.add(variant)
        db.session.flush()
        return variant.id


def words_in(digest: Digest, language: str) -> tuple[str, str]:
    """The issue's subject and intro in ``language``: the editor's words for it, else
    the issue's own (the default language's)."""
    words = (digest.translations or {}).get(language) or {}
    return (words.get("subject") or digest.subject, words.get("intro") or digest.intro)


class TranslationError(ValueError):
    pass


def check_translations(value) -> dict | None:
    """{"fr": {"subject": ..., "intro": ...}} for languages other than the default, each
    field optional (empty: the default language's); TranslationError says what is wrong."""
    if not value:
        return None
    offered = current_app.config["LANGUAGES"][1:]
    if not isinstance(value, dict):
        raise TranslationError('"translations" must be an object of languages.')
    kept = {}
    for code, words in value.items():
        if code not in offered:
            raise TranslationError(f"Unknown language {str(code)[:16]!r} for translations: "
                                   f"use one of {', '.join(offered) or '(none but the default)'}.")
        if not isinstance(words, dict) or set(words) - {"subject", "intro"} or not all(
                isinstance(text, str) for text in words.values()):
            raise TranslationError(f'The {code} translation is {{"subject", "intro"}}, as text.')
        subject = clean_subject(words.get("subject", ""))
        intro = words.get("intro", "").strip()[:5000]
        if subject or intro:
            kept[code] = {"subject": subject, "intro": intro}
    return kept or None


def plan_copy(digest: Digest, articles: list[Article], topic_ids: Iterable[int],
              topics_of: dict[int, set[int]], topics: list[Topic],
              subject: str | None = None, language: str | None = None) -> DigestVariant | None:
    """The copy of ``articles`` a reader of ``topic_ids`` gets (not added to the session);
    None when none is in their topics. ``subject``: an editor's; else the copy's own, in
    ``language`` (the readers')."""
    topic_ids = sorted(set(topic_ids))
    chosen = set(topic_ids)
    mine = [article for article in articles
            if not chosen or topics_of.get(article.id, set()) & chosen]
    if not mine:
        return None
    reading_order = [article for _, section in sections(mine, topic_ids, topics_of, topics)
                     for article in section]
    with force_locale(language_of(language)):
        subject = subject or clean_subject(default_subject(reading_order))
    return DigestVariant(digest_id=digest.id, topic_ids=topic_ids, language=language,
                         article_ids=[article.id for article in reading_order], subject=subject)


def preview_copy(digest: Digest, topic_ids: Iterable[int]) -> DigestVariant | None:
    """What a reader of ``topic_ids`` would get of ``digest`` (for previews and tests
    "as a reader of topics X"); not saved."""
    return plan_copy(digest, list(digest.articles), topic_ids,
                     topics_of(article.id for article in digest.articles), ordered_topics())


def delivered_by_topic_set(digest_id: int) -> list[tuple[list[str], dict[str, int]]]:
    """The issue's rows by the readers' topic set (names; [] = everything), counted by
    status: what the report shows. Skipped-at-start rows have no copy and are left out."""
    names = {topic.id: topic.name for topic in ordered_topics()}
    by_set: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for topic_ids, status, count in db.session.execute(
        select(DigestVariant.topic_ids, Delivery.status, func.count())
        .join(Delivery, Delivery.variant_id == DigestVariant.id)
        .where(DigestVariant.digest_id == digest_id)
        .group_by(DigestVariant.id, Delivery.status)
    ):
        label = tuple(names.get(topic_id, f"topic {topic_id}") for topic_id in topic_ids)
        by_set[label][status.value] += count
    return [(list(label), dict(counts)) for label, counts in sorted(by_set.items())]


def write_ledger(digest: Digest, now: datetime) -> int:
    """One row per reader of the issue's audience; returns how many are to be sent."""
    planner = Planner(digest)
    conditions = audience(digest.cadence, digest.segment)
    waves = Waves(digest.reader_local_time,
                  parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone)
    to_send = 0
    after = 0
    while True:
        readers = db.session.execute(
            select(Subscriber.id, Subscriber.paused_until, Subscriber.timezone,
                   Subscriber.language)
            .where(*conditions, Subscriber.id > after)
            .order_by(Subscriber.id).limit(LEDGER_CHUNK)).all()
        if not readers:
            return to_send
        first, after = readers[0].id, readers[-1].id
        chosen: dict[int, list[int]] = defaultdict(list)
        for subscriber_id, topic_id in db.session.execute(
            select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic_id)
            .where(subscriber_topics.c.subscriber_id.between(first, after))
        ):
            chosen[subscriber_id].append(topic_id)
        had = planner.received(first, after)
        rows = []
        for subscriber_id, paused_until, zone, language in readers:
            row = {"digest_id": digest.id, "subscriber_id": subscriber_id, "attempts": 0,
                   "status": DeliveryStatus.PENDING, "variant_id": None, "last_error": None,
                   "not_before": waves.not_before(zone)}
            if paused_until is not None and paused_until > now:
                row.update(status=DeliveryStatus.SKIPPED,
                           last_error=f"skipped: paused until {paused_until:%Y-%m-%d}")
            else:
                row["variant_id"] = planner.variant_for(
                    tuple(sorted(chosen.get(subscriber_id, ()))),
                    frozenset(had.get(subscriber_id, ())), language)
                if row["variant_id"] is None:
                    row.update(status=DeliveryStatus.SKIPPED, last_error=NOTHING_NEW)
            rows.append(row)
        to_send += sum(row["status"] is DeliveryStatus.PENDING for row in rows)
        # Rows of one wave, then of one variant, side by side: a batch (claimed in id
        # order) mostly needs one rendering.
        rows.sort(key=lambda row: (row["not_before"] or now, row["variant_id"] or 0,
                                   row["subscriber_id"]))
        ledger.add_rows(rows)
