"""Digests: compose an issue from what is new, start its send, watch it finish.

The database is the source of truth. An issue for a scheduled period has a
unique key, so a second trigger is a no-op; starting a send writes one delivery
row per reader of the issue, each naming that reader's copy (issues/copies.py);
a periodic sweep takes back rows whose worker vanished (its claim's heartbeat
stopped, or its lease expired) and re-publishes work whose task was lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale, format_date
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from newsletter import jobs
from newsletter.analytics import tracking
from newsletter.content import site_settings, topics
from newsletter.content.excerpts import digest_body
from newsletter.delivery import heartbeat, ledger
from newsletter.delivery.relay import close_circuits
from newsletter.extensions import db
from newsletter.issues import copies, lifecycle, waves
from newsletter.issues.copies import clean_subject, default_subject
from newsletter.issues.lifecycle import MANUAL_KEY_PREFIX, Move
from newsletter.issues.schedule import (
    daily_key,
    last_daily,
    last_scheduled,
    parse_daily_schedule,
    parse_schedule,
    period_key,
)
from newsletter.mail import verp
from newsletter.mail.headers import clean_text
from newsletter.mail.language import language_of
from newsletter.mail.links import external_url
from newsletter.mail.message import build_message
from newsletter.mail.render import RenderedMail, render_mail
from newsletter.mail.tokens import make_web_copy_token
from newsletter.mail.transport import DeliveryResult, Outcome
from newsletter.models import (
    OPEN_DELIVERY_STATUSES,
    Article,
    Cadence,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestKind,
    DigestStatus,
    DigestVariant,
    Segment,
    Subscriber,
    SubscriberStatus,
    digest_articles,
    utcnow,
)
from newsletter.queue import enqueue_after_commit, send_task_now
from newsletter.readers import segments

log = logging.getLogger(__name__)


def new_articles(cadence: Cadence | None = None) -> list[Article]:
    """Articles no issue has carried yet (cancelled ones aside), oldest first.

    For a scheduled cadence, only its own issues and those sent by hand count: the
    weekly issue also covers what went out daily (each weekly reader's copy then
    leaves out what that reader was sent already).
    """
    config = current_app.config
    carried = exists().where(
        digest_articles.c.article_id == Article.id,
        digest_articles.c.digest_id == Digest.id,
        Digest.status != DigestStatus.CANCELLED,
        or_(Digest.cadence == cadence, Digest.cadence.is_(None)) if cadence else True,
    )
    oldest = utcnow() - timedelta(days=config["DIGEST_MAX_AGE_DAYS"])
    return list(db.session.scalars(
        select(Article)
        .where(~carried, Article.excluded.is_(False), Article.published_at >= oldest)
        .order_by(Article.published_at, Article.id)
    ))


def compose(*, period: str | None = None, subject: str | None = None, headline: str = "",
            intro: str = "", send_at: datetime | None = None,
            cadence: Cadence | None = None, segment: Segment | None = None,
            segment_only: bool = False, reader_local_time: str | None = None,
            translations: dict | None = None) -> Digest | None:
    """Add a draft (or scheduled) issue of everything new to the current transaction.
    ``cadence``: the schedule it belongs to; None for an issue sent by hand.
    ``segment``: only its readers get it (SegmentError when it has none now);
    ``segment_only``: and the archive does not show it. ``reader_local_time``: the
    wall time every reader gets it at in their own zone (issues/waves.py).
    ``translations``: per-language subject and intro (``check_translations``).

    Flushed, not committed: the caller commits it together with what comes next
    (``start_send``), so a crash in between leaves nothing behind. None when there
    is too little, or the period already has its issue.
    """
    if segment is not None and segments.segment_count(segment) == 0:
        raise segments.SegmentError(f"The segment {segment.name!r} has no active reader: "
                                    "nothing to send.")
    articles = new_articles(cadence)
    if len(articles) < current_app.config["DIGEST_MIN_ARTICLES"]:
        log.info("no digest: %d new article(s)", len(articles))
        return None
    if period is None:
        # Two "send now" clicks see the same articles: the same key makes one issue
        # (one per segment: the same articles may go to two segments).
        period = manual_key(articles, segment)
    digest = Digest(period_key=period, articles=articles, intro=intro.strip(),
                    subject=clean_subject(subject or default_subject(articles)),
                    headline=_headline(headline), send_at=send_at, cadence=cadence,
                    segment=segment, segment_only=segment_only and segment is not None,
                    reader_local_time=reader_local_time,
                    translations=copies.check_translations(translations),
                    status=DigestStatus.SCHEDULED if send_at else DigestStatus.DRAFT)
    db.session.add(digest)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        log.info("digest for %s exists already", period)
        return None
    return digest


def _headline(typed: str) -> str | None:
    return clean_text(typed)[:300] or None


def default_headline(day: datetime | None = None) -> str:
    """The H1 of an issue without a headline: the site name and the day it goes out
    (today when unknown), in the newsletter's zone."""
    zone = parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone
    local = (day or utcnow()).astimezone(zone)
    # The date in the current locale ("3 December 2026", "3 décembre 2026").
    return f"{site_settings.current().site_name}, {format_date(local.date(), 'd MMMM y')}"


def headline_of(digest: Digest) -> str:
    """The mail's H1: the editor's headline, else the default for its day."""
    return digest.headline or default_headline(
        digest.send_at or digest.started_at or digest.created_at)


def manual_key(articles: list[Article], segment: Segment | None = None) -> str:
    ids = ",".join(str(article.id) for article in articles)
    if segment is not None:
        ids += f"/segment {segment.id}"
    return MANUAL_KEY_PREFIX + hashlib.sha256(ids.encode()).hexdigest()[:24]


class RecipientsChanged(Exception):
    """The readers to send to are not as many as the editor confirmed: nothing started."""

    def __init__(self, recipients: int):
        super().__init__(f"{recipients} reader(s) now")
        self.recipients = recipients


def start_send(digest_id: int, now: datetime | None = None,
               expected_recipients: int | None = None) -> int:
    """Write the ledger and fan out batch tasks; returns the number of recipients
    (0 when this issue was already started). ``now``: the moment readers' pauses are
    judged at (a schedule's trigger passes its own).

    ``expected_recipients``: the count the editor confirmed. Checked against the rows
    just written, in their transaction, so the send goes to exactly that many or
    does not start (RecipientsChanged: the caller's unit of work rolls it all back).
    Its batch tasks are published when the caller commits.
    """
    if not lifecycle.move(digest_id, Move.START):
        return 0
    digest = db.session.get(Digest, digest_id, populate_existing=True)  # started_at just set
    # Readers skipped when the ledger is written (nothing new, paused) are not counted.
    recipients = copies.write_ledger(digest, now or digest.started_at)
    ledger.refresh_statistics()
    if expected_recipients is not None:
        # The editor confirmed the readers the issue is for; those with nothing new
        # (or paused) have a skipped row among them.
        readers = db.session.scalar(select(func.count()).where(Delivery.digest_id == digest_id))
        if readers != expected_recipients:
            raise RecipientsChanged(readers)
    db.session.execute(update(Digest).where(Digest.id == digest_id).values(
        recipients=recipients, readers_tracked=tracking.tracks_readers()))  # for sunset
    # Only as many batch tasks as can run at once: each batch enqueues the next, so a
    # million-reader send keeps a handful of messages in Redis, not ten thousand.
    for _ in range(_chains_for(recipients)):
        enqueue_after_commit(jobs.SEND_DIGEST_BATCH, digest_id)
    if recipients == 0:
        finish_if_done(digest_id)
    return recipients


def send_now(subject: str | None = None, intro: str = "", headline: str = "",
             expected_recipients: int | None = None, segment: Segment | None = None,
             segment_only: bool = False, translations: dict | None = None) -> Digest | None:
    """Compose and start in one transaction: there is never a draft nobody started."""
    digest = compose(subject=subject, headline=headline, intro=intro, segment=segment,
                     segment_only=segment_only, translations=translations)
    if digest is not None:
        start_send(digest.id, expected_recipients=expected_recipients)
    return digest


def drafts() -> list[Digest]:
    """Issues composed but never started (left by an older version or a failed start)."""
    return list(db.session.scalars(select(Digest).where(
        Digest.status == DigestStatus.DRAFT, Digest.kind == DigestKind.ISSUE)
        .order_by(Digest.id)))


def unfinished() -> list[Digest]:
    return list(db.session.scalars(select(Digest).where(Digest.status.in_(
        lifecycle.NOT_STARTED | lifecycle.UNDER_WAY), Digest.kind == DigestKind.ISSUE)
        .order_by(Digest.id)))


def start_draft(digest_id: int, expected_recipients: int | None = None) -> int | None:
    """Send a draft (or a scheduled issue) now; None when it is neither.
    ``expected_recipients``: as for ``start_send``."""
    digest = db.session.get(Digest, digest_id)
    if digest is None or digest.status not in lifecycle.NOT_STARTED:
        return None
    return start_send(digest_id, expected_recipients=expected_recipients)


def discard(digest_id: int) -> bool:
    """Throw away a draft or scheduled issue: its articles and key are free again."""
    return lifecycle.move(digest_id, Move.DISCARD)  # no ledger rows yet: nothing to skip


class ScheduleError(ValueError):
    pass


def check_send_at(send_at: datetime) -> None:
    if send_at.tzinfo is None:
        raise ScheduleError("The time needs a timezone.")
    if send_at <= utcnow():
        raise ScheduleError("Choose a time in the future.")


def schedule(send_at: datetime, subject: str | None = None, intro: str = "",
             headline: str = "", segment: Segment | None = None,
             segment_only: bool = False, translations: dict | None = None) -> Digest | None:
    """Compose the next issue now and send it at ``send_at`` (beat checks every minute)."""
    check_send_at(send_at)
    return compose(subject=subject, headline=headline, intro=intro, send_at=send_at,
                   segment=segment, segment_only=segment_only, translations=translations,
                   reader_local_time=waves.scheduled_wall_time(send_at))



def update_scheduled(digest_id: int, send_at: datetime, subject: str, intro: str = "",
                     headline: str = "") -> bool:
    """Change a scheduled issue's words or time; False when it is no longer scheduled
    (it started or was cancelled meanwhile: one statement, so never half-changed)."""
    check_send_at(send_at)
    digest = db.session.get(Digest, digest_id)
    if digest is None:
        return False
    return lifecycle.move(digest_id, Move.EDIT,
                          subject=clean_subject(subject or default_subject(digest.articles)),
                          headline=_headline(headline), intro=intro.strip(), send_at=send_at,
                          reader_local_time=waves.scheduled_wall_time(send_at))


def due_scheduled(now: datetime | None = None) -> list[int]:
    """Scheduled issues whose time has come: the beat's task starts each with
    ``start_send`` in a transaction of its own. One in reader time starts when its
    wall time first comes anywhere (its waves wait in the ledger)."""
    now = now or utcnow()
    due = []
    for digest_id, send_at, wall in db.session.execute(
        select(Digest.id, Digest.send_at, Digest.reader_local_time).where(
            Digest.status == DigestStatus.SCHEDULED, Digest.send_at <= now + waves.MAX_LEAD)
    ):
        if (waves.first_moment(wall) if wall else send_at) <= now:
            due.append(digest_id)
    return due


def scheduled() -> list[Digest]:
    return list(db.session.scalars(select(Digest).where(
        Digest.status == DigestStatus.SCHEDULED).order_by(Digest.send_at)))


def run_weekly(now: datetime | None = None) -> Digest | None:
    """The beat's weekly trigger: at most one issue per scheduled time, however often
    and however late it fires.

    The key is the week of the scheduled time the trigger belongs to, not of the
    moment the task runs: a Sunday 23:59 trigger that runs at 00:01 is Sunday's.
    """
    schedule = parse_schedule(current_app.config["DIGEST_SCHEDULE"])
    now = now or utcnow()
    if current_app.config["SEND_IN_READER_TIME"]:
        # The occurrence whose wall time has come somewhere on Earth.
        occurrence = last_scheduled(waves.as_earliest_wall(now, schedule.timezone), schedule)
        return _compose_and_start(period_key(occurrence, schedule), Cadence.WEEKLY, now,
                                  waves.wall_time(occurrence, schedule.timezone))
    return _compose_and_start(period_key(last_scheduled(now, schedule), schedule),
                              Cadence.WEEKLY, now)


def run_daily(now: datetime | None = None) -> Digest | None:
    """The beat's daily trigger (for readers who chose daily): one issue per local date
    of the daily schedule; nothing while there is no daily schedule."""
    if not current_app.config["DAILY_SCHEDULE"]:
        return None
    schedule = parse_daily_schedule(current_app.config["DAILY_SCHEDULE"])
    now = now or utcnow()
    if current_app.config["SEND_IN_READER_TIME"]:
        occurrence = last_daily(waves.as_earliest_wall(now, schedule.timezone), schedule)
        return _compose_and_start(daily_key(occurrence, schedule), Cadence.DAILY, now,
                                  waves.wall_time(occurrence, schedule.timezone))
    return _compose_and_start(daily_key(last_daily(now, schedule), schedule), Cadence.DAILY, now)


def _compose_and_start(period: str, cadence: Cadence, now: datetime,
                       reader_local_time: str | None = None) -> Digest | None:
    if db.session.scalar(select(Digest.id).where(Digest.period_key == period)) is not None:
        return None  # the trigger of an issue made already (reader time runs it often)
    digest = compose(period=period, cadence=cadence, reader_local_time=reader_local_time)
    if digest is not None:
        start_send(digest.id, now)
    return digest


def _chains_for(due: int) -> int:
    config = current_app.config
    return min(config["SEND_CONCURRENCY"], math.ceil(due / config["SEND_BATCH_SIZE"]))


def _live_claims(digest_id: int) -> int:
    return db.session.scalar(select(func.count(func.distinct(Delivery.claim))).where(
        Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENDING))


def after_batch(digest_id: int, *, hand_on: bool, retry_later: bool) -> None:
    """A batch task ends: enqueue the next one while work remains, or finish the issue.

    ``hand_on``: the batch finished its rows, so the chain goes on (unless enough
    others already run: a chain the sweeper restarted while a task waited in Redis
    dies out here). ``retry_later``: the relay was unreachable; try again after a
    pause, so N failures span the breaker's window.
    """
    config = current_app.config
    digest = db.session.get(Digest, digest_id)
    if digest is not None and digest.status == DigestStatus.CANCELLED:
        ledger.skip_unsent(digest_id)
    if retry_later:
        # Published now: the countdown outlasts the caller's commit by far.
        send_task_now(jobs.SEND_DIGEST_BATCH, digest_id,
                      countdown=config["SEND_BREAKER_WINDOW"] / config["SEND_BREAKER_FAILURES"])
    elif (hand_on and digest is not None and digest.status == DigestStatus.SENDING
          and _live_claims(digest_id) < config["SEND_CONCURRENCY"]):
        # Published now, as the batch ends, so the chain does not wait for the caller's
        # commit; not when this batch's own transaction just paused the issue (the guard,
        # the breaker), which the next batch could not see yet. Resuming republishes.
        send_task_now(jobs.SEND_DIGEST_BATCH, digest_id)
    else:
        # Only where the chain ends: a next task finishes the issue when its claim finds
        # nothing, so no batch looks for open rows (a scan past every row sent so far).
        finish_if_done(digest_id)


def pause_for_relay(digest_id: int, reason: str) -> bool:
    """The circuit breaker: the relay failed for a whole window, so stop sending (nobody
    is marked failed for it) until an editor resumes."""
    reason = f"Paused automatically: the mail relay could not be reached ({reason})"[:1000]
    paused = pause(digest_id, reason)
    if paused:
        log.error("digest %s: %s", digest_id, reason)
    return paused


def finish_if_done(digest_id: int) -> bool:
    """Mark the issue sent once every delivery row is final."""
    open_rows = exists().where(Delivery.digest_id == digest_id,
                               Delivery.status.in_(OPEN_DELIVERY_STATUSES))
    # A sequence step's send stays open: readers keep entering.
    finished = lifecycle.move(digest_id, Move.FINISH,
                              where=~open_rows & (Digest.kind == DigestKind.ISSUE))
    if finished:
        log.info("digest %s sent: every delivery is final", digest_id)
    return finished


def progress(digest_id: int) -> dict[str, int]:
    counts = dict.fromkeys((status.value for status in DeliveryStatus), 0)
    counts["resent_after_crash"] = 0
    for status, resent, count in db.session.execute(
        select(Delivery.status, Delivery.resent_after_crash, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status, Delivery.resent_after_crash)
    ):
        counts[status.value] += count
        if resent:
            counts["resent_after_crash"] += count
    counts["total"] = sum(counts[status.value] for status in DeliveryStatus)
    counts["remaining"] = sum(counts[s] for s in ("pending", "sending", "deferred"))
    return counts


def waiting_for(digest_id: int, counts: dict[str, int], now: datetime | None = None) -> str:
    """What the rest of a send waits for, in words (the CLI's progress line), e.g.
    "2 in flight, 3 deferred, next retry in 40 s" or "paused: <reason>"."""
    digest = db.session.get(Digest, digest_id)
    if digest.status == DigestStatus.PAUSED:
        return f"paused: {digest.pause_reason or 'by an editor'}"
    if digest.status != DigestStatus.SENDING:
        return digest.status.value
    parts = []
    if counts["sending"]:
        parts.append(f"{counts['sending']} in flight")
    if counts["pending"]:
        parts.append(f"{counts['pending']} waiting for a worker")
    if counts["deferred"]:
        next_try = db.session.scalar(select(func.min(Delivery.next_attempt_at)).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.DEFERRED))
        wait = math.ceil(((next_try or utcnow()) - (now or utcnow())).total_seconds())
        parts.append(f"{counts['deferred']} deferred, " + (
            f"next retry in {wait} s" if wait > 0 else "retrying now"))
    return ", ".join(parts) or "finishing"


def sweep_candidates(now: datetime | None = None) -> list[tuple[int, DigestStatus]]:
    """Issues the sweeper looks at: under way, or cancelled in the last day (a batch
    may still have given rows back). Each is swept by ``sweep_issue`` in a transaction
    of its own."""
    recent = (now or utcnow()) - timedelta(days=1)
    return [tuple(row) for row in db.session.execute(select(Digest.id, Digest.status).where(
        Digest.status.in_(lifecycle.UNDER_WAY)
        | ((Digest.status == DigestStatus.CANCELLED) & (Digest.finished_at >= recent))))]


@dataclasses.dataclass(frozen=True)
class Swept:
    released: int  # rows taken back from workers that are gone
    published: int  # batch tasks enqueued


def sweep_issue(digest_id: int, status: DigestStatus, now: datetime | None = None) -> Swept:
    """Recover one send whose worker died or whose tasks were lost: take back the rows
    of claims whose heartbeat stopped or whose lease expired, and enqueue batch tasks
    (published when the caller commits, so they find the rows taken back)."""
    now = now or utcnow()
    released = ledger.take_back(digest_id, now, heartbeat.dead(ledger.claims_held(digest_id)))
    if released:
        log.warning("digest %s: took back %d row(s) from lost workers", digest_id, released)
    if status == DigestStatus.CANCELLED:
        ledger.skip_unsent(digest_id)
    if status != DigestStatus.SENDING:
        return Swept(released, 0)
    live_leases = db.session.scalar(select(func.count()).where(
        Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENDING))
    if live_leases:
        return Swept(released, 0)  # a worker is on it; its chain covers the rest
    # Counted only as far as the number of chains needs, so a sweep of a million-reader
    # send reads a few hundred index entries, not every pending row.
    config = current_app.config
    enough = config["SEND_CONCURRENCY"] * config["SEND_BATCH_SIZE"]
    due = db.session.scalar(select(func.count()).select_from(
        select(Delivery.id).where(
            Delivery.digest_id == digest_id,
            ((Delivery.status == DeliveryStatus.PENDING) & ledger.due_wave(now))
            | ((Delivery.status == DeliveryStatus.DEFERRED) & (Delivery.next_attempt_at <= now)))
        .limit(enough).subquery()))
    chains = _chains_for(due)
    for _ in range(chains):
        enqueue_after_commit(jobs.SEND_DIGEST_BATCH, digest_id)
    finish_if_done(digest_id)
    return Swept(released, chains)


def render(digest: Digest, unsubscribe_url: str, *, web_view: bool = False,
           variant: DigestVariant | None = None, language: str | None = None) -> RenderedMail:
    """The issue as one variant's readers get it (None: the whole issue, in ``language``
    or the default)."""
    site = site_settings.current()
    copy = copies.copy_of(digest, variant)
    language = language_of(variant.language if variant is not None else language)
    with force_locale(language):
        headline = headline_of(digest)
    # A preview (unsaved, id 0) has no archive page yet: point at the archive index.
    archive_url = (external_url("public.archive_issue", digest_id=digest.id) if digest.id
                   else external_url("public.archive"))
    return render_mail(
        "digest",
        language=language,
        digest=digest,
        intro=copies.words_in(digest, language)[1],
        subject=copy.subject,
        headline=headline,
        sections=copy.sections,
        # Each body once per rendering, which is once per variant, not per reader.
        bodies={article.id: digest_body(article.summary, article.body_html)
                for _, articles in copy.sections for article in articles},
        site_name=site.site_name,
        site_description=site.site_description,
        postal_address=site.postal_address,
        archive_url=archive_url,
        # "View in your browser": this copy, sections and all (the whole issue for rows
        # written before copies, and for previews).
        web_copy_url=(external_url("public.web_copy",
                                   token=make_web_copy_token(digest.id, variant.id))
                      if digest.id and variant is not None and variant.id else archive_url),
        subscribe_url=external_url("public.subscribe"),
        unsubscribe_url=unsubscribe_url,
        web_view=web_view,
    )


def active_subscriber_count(segment: Segment | None = None) -> int:
    """The readers a send by hand is for: every active one, or the segment's."""
    if segment is not None:
        return segments.segment_count(segment)
    return db.session.scalar(select(func.count()).where(
        Subscriber.status == SubscriberStatus.ACTIVE))


def preview(subject: str | None = None, intro: str = "", headline: str = "",
            as_topics: Iterable[str] = ()) -> RenderedMail | None:
    """The next issue as a reader would get it (a reader of the topic slugs
    ``as_topics``; none: everything), without saving anything. Raises TopicError for
    an unknown slug or when nothing new is in those topics."""
    articles = new_articles()
    if not articles:
        return None
    draft = Digest(id=0, subject=clean_subject(subject or default_subject(articles)),
                   headline=_headline(headline), intro=intro.strip(), articles=articles)
    # Never added to the session (SQLAlchemy 2 does not cascade it in through
    # the articles), so nothing of the draft is ever written.
    variant = None
    chosen = topics.topics_by_slugs(as_topics)
    if chosen:
        variant = copies.preview_copy(draft, [topic.id for topic in chosen])
        if variant is None:
            raise topics.TopicError("Nothing new for a reader of these topics: they would "
                                    "get no mail.")
        variant.subject = draft.subject if subject else variant.subject
    # Its unsubscribe link leads to a page saying this was a test: nobody to unsubscribe.
    return render(draft, external_url("public.test_mail"), variant=variant)


def send_test(to_email: str, subject: str | None = None, intro: str = "",
              headline: str = "", as_topics: Iterable[str] = ()) -> DeliveryResult:
    """Send the next issue's preview to one address (an editor's own), now."""
    rendered = preview(subject, intro, headline, as_topics)
    if rendered is None:
        return DeliveryResult(Outcome.FAILED, "There are no new articles to preview.")
    test_copy = dataclasses.replace(rendered, subject="[Test] " + rendered.subject)
    message = build_message(test_copy, mail_from=site_settings.mail_from(), to_email=to_email,
                            reply_to=site_settings.current().reply_to or None)
    # The envelope of a real send too (what SPF and DMARC tools judge).
    return current_app.extensions["smtp"].deliver_message(
        message, verp.address_for(verp.TEST_MAIL))


def pause(digest_id: int, reason: str | None = None) -> bool:
    """Stop a send within one message; nothing in the ledger is lost. ``reason``: why
    the send paused itself (None when an editor paused it), set in the same statement."""
    return lifecycle.move(digest_id, Move.PAUSE, pause_reason=reason)


def resume(digest_id: int, *, acknowledge_guard: bool = False) -> bool:
    """Send again from the ledger. ``acknowledge_guard``: an owner confirmed the guard's
    figures, which from now on judge only what is sent after this."""
    acknowledged = {"guard_acknowledged_at": utcnow()} if acknowledge_guard else {}
    if not lifecycle.move(digest_id, Move.RESUME, **acknowledged):
        return False
    close_circuits(current_app.config)  # the breakers count afresh
    sweep_issue(digest_id, DigestStatus.SENDING)  # batch tasks for what is left
    return True


def cancel(digest_id: int) -> bool:
    """Stop for good: whoever has not been sent to yet is skipped.

    Its articles are free again (``new_articles`` ignores cancelled issues) and so is
    a by-hand key, so "send now" with the same articles makes a new issue. A weekly
    key stays taken: a late duplicate trigger must not bring back a cancelled week.
    """
    cancelled = lifecycle.move(digest_id, Move.CANCEL)
    if cancelled:
        ledger.skip_unsent(digest_id)  # rows a running batch still holds follow when it stops
    return cancelled
