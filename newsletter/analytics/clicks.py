"""A click on a tracked link: judged, answered, recorded; the one writer of click rows.

The redirect makes one Redis round trip (a script that looks up the link's target,
adds the click to its copy's burst window, counts the token's flood and queues the
record) and no database write: beat's ``store_clicks`` drains the queue into the
``clicks`` table in batches. So a click is answered while the database is briefly
down, and a flood costs one Redis call per request. When Redis is down the click
is judged without its burst and written straight to the database.

A click row is written once and may change in one way only: human to bot, when a
later click of the same copy shows a burst or a flood (``RELABEL``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from newsletter.analytics import tracking, verdict
from newsletter.delivery.relay import redis_client
from newsletter.extensions import db
from newsletter.mail.click_links import OPEN_PIXEL, CopyClaim, LinkClaim
from newsletter.models import Click, ClickKind, Digest, Verdict

log = logging.getLogger(__name__)

BURST_WINDOW = 1.0  # seconds: a copy's distinct links clicked within it form a burst ...
BURST_LINKS = 3  # ... of this many links; a person opens one or two articles a second
BURST_LINKS_EARLY = 2  # ... or two, in the minutes after the copy was sent
EARLY_SECONDS = 180  # when scanners strike (median 43 s after sending, mostly 20-60 s)
FLOOD_JUDGED = 10  # clicks of one token in a minute judged one by one; then "flood"
FLOOD_STORED = 20  # ... and past this many, not stored at all that minute
QUEUE_MAX = 1_000_000  # records waiting in Redis (a long database outage): then dropped
LINKS_TTL = 600  # seconds an issue's link targets stay cached in Redis
DRAIN_BATCH = 1000

# The transitions a stored click may make: only human to bot, and only for these reasons.
RELABEL = {(Verdict.HUMAN, Verdict.BOT): {"burst": BURST_WINDOW, "flood": 60.0}}

# One round trip per click. The limits are part of the script's text, so a click
# sends only what changes: the link, the time, the verdict so far and the record.
_RECORD = f"""
local url = redis.call('HGET', KEYS[1], ARGV[1])
if not url then return redis.call('EXISTS', KEYS[1]) end
local now = tonumber(ARGV[2])
local verdict, reason = ARGV[3], ARGV[4]
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - {BURST_WINDOW})
redis.call('EXPIRE', KEYS[2], 10)
if verdict == 'human' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then
  verdict, reason = 'bot', 'burst'
end
local hits = redis.call('INCR', KEYS[3])
if hits == 1 then redis.call('EXPIRE', KEYS[3], 120) end
if hits > {FLOOD_JUDGED} then verdict, reason = 'bot', 'flood' end
local stored = 0
if hits <= {FLOOD_STORED} and redis.call('LLEN', KEYS[4]) < {QUEUE_MAX} then
  redis.call('RPUSH', KEYS[4], ARGV[5] .. '|' .. verdict .. '|' .. reason)
  stored = 1
end
return {{url, verdict, reason, stored}}
"""


class NotCached(Exception):
    """The quick path cannot answer (the issue's links are not in Redis, or Redis is
    down): the full request path will."""


class Unavailable(Exception):
    """Neither Redis nor the database can say where the link goes: try again soon."""


@dataclass(frozen=True)
class Followed:
    url: str
    verdict: Verdict
    reason: str
    stored: bool


def _key(*parts: object) -> str:
    return ":".join([current_app.config["TASK_QUEUE"], "clicks", *map(str, parts)])


def queue_key() -> str:
    return _key("queue")


def _script():
    client = redis_client()
    scripts = current_app.extensions.setdefault("click_scripts", {})
    if id(client) not in scripts:
        scripts[id(client)] = client.register_script(_RECORD)
    return scripts[id(client)]


def targets(digest_id: int) -> dict[int, str] | None:
    """The issue's tracked links (link number -> URL, the open pixel's an empty URL);
    None when there is no such issue."""
    digest = db.session.get(Digest, digest_id)
    if digest is None:
        return None
    return {OPEN_PIXEL: "", **tracking.link_targets(digest)}


def follow(link: LinkClaim, copy: CopyClaim, method: str, user_agent: str | None,
           address: str | None, now: float | None = None, *,
           cached_only: bool = False) -> Followed | None:
    """Judge and record one click; where to send the visitor, or None (no such link).
    ``cached_only``: raise NotCached rather than read the database."""
    if link.link == OPEN_PIXEL:
        return None
    now = time.time() if now is None else now
    judged = verdict.judge_click(method, user_agent, address, now - copy.sent_at)
    early = now - copy.sent_at < EARLY_SECONDS
    followed = _record(link, copy, ClickKind.CLICK, judged, now,
                       BURST_LINKS_EARLY if early else BURST_LINKS, cached_only)
    if followed is None or not followed.url.startswith(("http://", "https://")):
        return None  # only ever to a web page (articles' URLs are checked when saved, too)
    return followed


def record_open(link: LinkClaim, copy: CopyClaim, method: str, user_agent: str | None,
                address: str | None, now: float | None = None) -> bool:
    """Judge and record one fetch of an open pixel; False when it is not one."""
    if link.link != OPEN_PIXEL or not current_app.config["TRACK_OPENS"]:
        return False
    now = time.time() if now is None else now
    judged = verdict.judge_open(method, user_agent, address)
    # A pixel has no burst: a window no copy fills.
    return _record(link, copy, ClickKind.OPEN, judged, now, 2**31) is not None


def _record(link: LinkClaim, copy: CopyClaim, kind: ClickKind, judged: verdict.Judged,
            now: float, burst_links: int, cached_only: bool = False) -> Followed | None:
    config = current_app.config
    reader = copy.subscriber_id if config["TRACK_READERS"] and copy.subscriber_id else ""
    at = f"{now:.6f}"
    record = (f"{secrets.token_hex(8)}|{link.digest_id}|{link.variant_id or ''}|{link.link}|"
              f"{copy.copy}|{reader}|{at}|{kind.value}")
    prefix = f"{config['TASK_QUEUE']}:clicks:"
    links_key = f"{prefix}links:{link.digest_id}"
    keys = [links_key, f"{prefix}burst:{link.digest_id}:{copy.copy}",
            f"{prefix}flood:{link.digest_id}:{link.link}:{copy.copy}:{int(now // 60)}",
            f"{prefix}queue"]
    args = [link.link, at, judged.verdict.value, judged.reason, record, burst_links]
    try:
        answer = _script()(keys=keys, args=args)
        # 0: the issue's links are not cached; 1: a signed link the cached ones lack
        # (a sequence step edited since they were cached): from the database, once.
        if answer in (0, 1) and cached_only:
            raise NotCached
        if answer in (0, 1):
            found = targets(link.digest_id)
            if found is None:
                return None
            client = redis_client()
            with client.pipeline() as pipe:
                pipe.hset(links_key, mapping={"issue": link.digest_id, **found})
                pipe.expire(links_key, LINKS_TTL)
                pipe.execute()
            answer = _script()(keys=keys, args=args)
    except redis.RedisError as error:
        if cached_only:
            raise NotCached from None
        log.warning("click on issue %s not queued (Redis: %s); stored directly",
                    link.digest_id, error)
        return _record_without_redis(record, link, judged)
    if answer in (0, 1):
        return None
    url, verdict_value, reason, stored = answer
    return Followed(url.decode(), Verdict(verdict_value.decode()), reason.decode(), bool(stored))


def _record_without_redis(record: str, link: LinkClaim, judged: verdict.Judged) -> Followed | None:
    try:
        found = targets(link.digest_id)
        if found is None or (link.link != OPEN_PIXEL and link.link not in found):
            return None
        rows = _rows([f"{record}|{judged.verdict.value}|{judged.reason}".encode()])
        db.session.execute(insert(Click), rows)
    except Exception as error:  # the database is down too
        raise Unavailable(str(error)) from None
    return Followed(found.get(link.link, ""), judged.verdict, judged.reason, True)


def _rows(records: Iterable[bytes]) -> list[dict]:
    rows = []
    for raw in records:
        try:
            (key, digest_id, variant_id, link, copy, subscriber_id, at, kind, verdict_value,
             reason) = raw.decode().split("|")
            rows.append({
                "record_key": key, "digest_id": int(digest_id),
                "variant_id": int(variant_id) if variant_id else None,
                "link": int(link), "copy": int(copy),
                "subscriber_id": int(subscriber_id) if subscriber_id else None,
                "at": datetime.fromtimestamp(float(at), UTC), "kind": ClickKind(kind),
                "verdict": Verdict(verdict_value), "reason": reason[:32]})
        except ValueError:
            log.error("dropping a malformed click record")
    return rows


@dataclass
class Drained:
    taken: int  # records read from the queue: trim them once the rows are committed
    stored: int

    def acknowledge(self) -> None:
        """After the commit: the stored records leave the queue."""
        if self.taken:
            redis_client().ltrim(queue_key(), self.taken, -1)


def store_batch(limit: int = DRAIN_BATCH) -> Drained:
    """Move up to ``limit`` queued clicks into the database (the caller commits, then
    calls ``acknowledge``). A record stored already (a drain that died between commit
    and trim) is skipped; one whose issue is gone is dropped."""
    records = redis_client().lrange(queue_key(), 0, limit - 1)
    rows = _rows(records)
    if not rows:
        return Drained(len(records), 0)
    known = set(db.session.scalars(select(Click.record_key).where(
        Click.record_key.in_([row["record_key"] for row in rows]))))
    issues = set(db.session.scalars(select(Digest.id).where(
        Digest.id.in_({row["digest_id"] for row in rows}))))
    rows = [row for row in rows if row["record_key"] not in known and row["digest_id"] in issues]
    if rows:
        db.session.execute(insert(Click), rows)
        _relabel(rows)
    return Drained(len(records), len(rows))


def _relabel(rows: list[dict]) -> None:
    """A burst or flood also makes the same copy's clicks just before it bot clicks:
    the first links a scanner fetched looked like a person's."""
    windows = RELABEL[(Verdict.HUMAN, Verdict.BOT)]
    latest: dict[tuple, dict] = {}
    for row in rows:
        if row["verdict"] is Verdict.BOT and row["reason"] in windows:
            latest[(row["digest_id"], row["copy"], row["reason"])] = row
    for (digest_id, copy, reason), row in latest.items():
        db.session.execute(update(Click).where(
            Click.digest_id == digest_id, Click.copy == copy, Click.kind == ClickKind.CLICK,
            Click.verdict == Verdict.HUMAN,
            Click.at >= row["at"] - timedelta(seconds=windows[reason]),
            Click.at <= row["at"]).values(verdict=Verdict.BOT, reason=reason))


# An erased issue's links must stop redirecting at once, not when their cached
# targets expire: its cache goes when the erasure commits (not before: a rollback
# keeps the issue, and a click in between would only fill the cache again).
_ERASED = "newsletter.erased_issues"  # session.info: ids, or ALL_ISSUES
ALL_ISSUES = -1


@event.listens_for(Session, "after_flush")
def _note_erased_issues(session: Session, flush_context) -> None:
    erased = {obj.id for obj in session.deleted if isinstance(obj, Digest)}
    if erased:
        session.info.setdefault(_ERASED, set()).update(erased)


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_erasure(state: ORMExecuteState) -> None:
    """``delete(Digest).where(...)`` names no ids: every issue's cache goes."""
    if not state.is_delete:  # every query passes here: the cheap test first
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is Digest:
        state.session.info.setdefault(_ERASED, set()).add(ALL_ISSUES)


@event.listens_for(Session, "after_commit")
def _forget_erased_issues(session: Session) -> None:
    erased = session.info.pop(_ERASED, None)
    if erased:
        forget_issues(erased)


@event.listens_for(Session, "after_soft_rollback")
def _keep_issues(session: Session, previous_transaction) -> None:
    session.info.pop(_ERASED, None)


def forget_issues(digest_ids: set[int]) -> None:
    """Drop the cached link targets of these issues (ALL_ISSUES: of every issue)."""
    try:
        client = redis_client()
        if ALL_ISSUES in digest_ids:
            cached = list(client.scan_iter(match=_key("links", "*"), count=1000))
        else:
            cached = [_key("links", digest_id) for digest_id in digest_ids]
        if cached:
            client.delete(*cached)
    except redis.RedisError as error:  # then they expire within LINKS_TTL
        log.warning("cached links of erased issues not dropped (Redis: %s)", error)


def forget_reader(subscriber_id: int) -> None:
    """An erased reader's clicks stay in the counts without their id."""
    db.session.execute(update(Click).where(Click.subscriber_id == subscriber_id)
                       .values(subscriber_id=None))


def drain_lock():
    """One drain at a time: two would trim each other's records."""
    return redis_client().lock(_key("drain-lock"), timeout=120, blocking_timeout=0)


def still_draining(lock) -> bool:
    """Before each batch: the lock held for another timeout, or False when it expired
    meanwhile (a long backlog): another drain may have begun, so this one stops."""
    try:
        lock.reacquire()
    except redis.exceptions.LockError:
        return False
    return True


def end_drain(lock) -> None:
    with contextlib.suppress(redis.exceptions.LockError):  # expired: not ours any more
        lock.release()


def waiting() -> int:
    return int(redis_client().llen(queue_key()))
