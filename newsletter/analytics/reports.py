"""What an issue's clicks (and opens) say: the report page, its CSV, the CLI's JSON.

Raw rows and the daily folds of older ones (``retention.py``) are added together, so
a report reads the same after its clicks were folded; only unique human copies are a
sum of each day's distinct copies once folded (a copy clicked on two days counts twice).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import distinct, func, select

from newsletter.analytics import tracking
from newsletter.extensions import db
from newsletter.issues.copies import copy_of
from newsletter.models import (
    Article,
    Click,
    ClickDay,
    ClickKind,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestKind,
    DigestVariant,
    Topic,
    Verdict,
)


@dataclass
class LinkLine:
    link: int
    url: str
    title: str
    human: int = 0
    bot: int = 0


@dataclass
class TopicSetLine:
    names: list[str]
    delivered: int = 0
    human: int = 0
    bot: int = 0
    human_copies: int = 0

    @property
    def click_rate(self) -> float:
        return self.human_copies / self.delivered if self.delivered else 0.0


@dataclass
class SectionLine:
    name: str
    delivered: int = 0  # delivered copies that carried this section
    human: int = 0
    bot: int = 0


@dataclass
class ClickReport:
    digest_id: int
    recipients: int
    delivered: int
    human: int = 0
    bot: int = 0
    unique_human_copies: int = 0
    links: list[LinkLine] = field(default_factory=list)
    topic_sets: list[TopicSetLine] = field(default_factory=list)
    sections: list[SectionLine] = field(default_factory=list)
    opens: dict[str, int] | None = None
    over_time: list[tuple[datetime, int, int]] = field(default_factory=list)  # hour, human, bot

    @property
    def click_rate(self) -> float:
        """Share of delivered copies with at least one human click."""
        return self.unique_human_copies / self.delivered if self.delivered else 0.0

    def as_json(self) -> dict:
        return {"recipients": self.recipients, "delivered": self.delivered,
                "clicks": {"human": self.human, "bot": self.bot,
                           "unique_human_copies": self.unique_human_copies},
                "links": [{"url": line.url, "human": line.human, "bot": line.bot}
                          for line in self.links],
                "opens": self.opens}


def _delivered_by_variant(digest_id: int) -> dict[int | None, int]:
    return dict(db.session.execute(
        select(Delivery.variant_id, func.count()).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENT)
        .group_by(Delivery.variant_id)).all())


def _counts(digest_id: int, kind: ClickKind, *group) -> dict[tuple, dict[str, int]]:
    """Raw and folded counts by ``group`` (columns named alike in both tables) and verdict."""
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    raw_columns = [getattr(Click, name) for name in group]
    for *key, verdict_value, count in db.session.execute(
            select(*raw_columns, Click.verdict, func.count())
            .where(Click.digest_id == digest_id, Click.kind == kind)
            .group_by(*raw_columns, Click.verdict)):
        counts[tuple(key)][Verdict(verdict_value).value] += count
    folded_columns = [getattr(ClickDay, name) for name in group]
    for *key, human, bot, proxy in db.session.execute(
            select(*folded_columns, func.sum(ClickDay.human), func.sum(ClickDay.bot),
                   func.sum(ClickDay.proxy))
            .where(ClickDay.digest_id == digest_id, ClickDay.kind == kind)
            .group_by(*folded_columns)):
        for name, value in (("human", human), ("bot", bot), ("proxy", proxy)):
            counts[tuple(key)][name] += int(value or 0)
    return counts


def _human_copies(digest_id: int, *group) -> dict[tuple, int]:
    copies: dict[tuple, int] = defaultdict(int)
    raw_columns = [getattr(Click, name) for name in group]
    for *key, count in db.session.execute(
            select(*raw_columns, func.count(distinct(Click.copy)))
            .where(Click.digest_id == digest_id, Click.kind == ClickKind.CLICK,
                   Click.verdict == Verdict.HUMAN).group_by(*raw_columns)):
        copies[tuple(key)] += count
    folded_columns = [getattr(ClickDay, name) for name in group]
    for *key, count in db.session.execute(
            select(*folded_columns, func.sum(ClickDay.human_copies))
            .where(ClickDay.digest_id == digest_id, ClickDay.kind == ClickKind.CLICK)
            .group_by(*folded_columns)):
        copies[tuple(key)] += int(count or 0)
    return copies


def issue_report(digest: Digest) -> ClickReport:
    delivered = _delivered_by_variant(digest.id)
    report = ClickReport(digest.id, digest.recipients, sum(delivered.values()))
    totals = _counts(digest.id, ClickKind.CLICK).get((), {})
    report.human, report.bot = totals.get("human", 0), totals.get("bot", 0)
    report.unique_human_copies = _human_copies(digest.id).get((), 0)
    by_link = _counts(digest.id, ClickKind.CLICK, "link")
    for link, (url, title) in sorted(_link_names(digest, {link for (link,) in by_link}).items()):
        counts = by_link.get((link,), {})
        report.links.append(LinkLine(link, url, title,
                                     counts.get("human", 0), counts.get("bot", 0)))
    report.topic_sets = _topic_sets(digest.id, delivered)
    report.sections = _sections(digest, delivered)
    report.over_time = _over_time(digest)
    if current_app.config["TRACK_OPENS"] or db.session.scalar(
            select(func.count()).select_from(Click).where(
                Click.digest_id == digest.id, Click.kind == ClickKind.OPEN)):
        opens = _counts(digest.id, ClickKind.OPEN).get((), {})
        report.opens = {"human": opens.get("human", 0), "proxy": opens.get("proxy", 0),
                        "bot": opens.get("bot", 0)}
    return report


def _link_names(digest: Digest, clicked: set[int]) -> dict[int, tuple[str, str]]:
    """Each link of the issue (and each clicked one): its URL and title. A sequence
    step's links have no title but their URL."""
    if digest.kind == DigestKind.SEQUENCE_STEP:
        return {link: (url, url) for link, url in tracking.link_targets(digest).items()}
    articles = {article.id: article for article in digest.articles}
    missing = clicked - set(articles)
    if missing:  # an article taken out of the issue since: still its clicks
        articles.update({article.id: article for article in db.session.scalars(
            select(Article).where(Article.id.in_(missing)))})
    return {link: (article.url, article.title) for link, article in articles.items()}


def _topic_sets(digest_id: int, delivered: dict[int | None, int]) -> list[TopicSetLine]:
    names = dict(db.session.execute(select(Topic.id, Topic.name)).all())
    variants = dict(db.session.execute(select(DigestVariant.id, DigestVariant.topic_ids).where(
        DigestVariant.digest_id == digest_id)).all())
    counts = _counts(digest_id, ClickKind.CLICK, "variant_id")
    copies = _human_copies(digest_id, "variant_id")
    lines: dict[tuple, TopicSetLine] = {}
    for variant_id in set(delivered) | {key[0] for key in counts}:
        label = tuple(names.get(topic, f"topic {topic}") for topic in variants.get(variant_id)
                      or ())
        line = lines.setdefault(label, TopicSetLine(list(label)))
        line.delivered += delivered.get(variant_id, 0)
        line.human += counts.get((variant_id,), {}).get("human", 0)
        line.bot += counts.get((variant_id,), {}).get("bot", 0)
        line.human_copies += copies.get((variant_id,), 0)
    return [lines[label] for label in sorted(lines)]


def _sections(digest: Digest, delivered: dict[int | None, int]) -> list[SectionLine]:
    """Clicks by the section (the topic heading) each clicked link sat under in its copy:
    the same article can sit under different headings in different readers' copies."""
    if digest.kind == DigestKind.SEQUENCE_STEP:  # one body, no topic headings
        return []
    counts = _counts(digest.id, ClickKind.CLICK, "variant_id", "link")
    lines: dict[str, SectionLine] = {}
    for variant_id in set(delivered) | {variant_id for variant_id, _ in counts}:
        variant = db.session.get(DigestVariant, variant_id) if variant_id is not None else None
        for name, articles in copy_of(digest, variant).sections:
            line = lines.setdefault(name, SectionLine(name))
            line.delivered += delivered.get(variant_id, 0)
            for article in articles:
                found = counts.get((variant_id, article.id), {})
                line.human += found.get("human", 0)
                line.bot += found.get("bot", 0)
    return sorted(lines.values(), key=lambda line: (-line.human, line.name))


def _over_time(digest: Digest, hours: int = 48) -> list[tuple[datetime, int, int]]:
    """Clicks per hour over the issue's first ``hours`` hours (raw rows only)."""
    start = digest.started_at
    if start is None:
        return []
    start = start.replace(minute=0, second=0, microsecond=0)
    buckets = [[start + timedelta(hours=n), 0, 0] for n in range(hours)]
    for at, verdict_value in db.session.execute(
            select(Click.at, Click.verdict).where(
                Click.digest_id == digest.id, Click.kind == ClickKind.CLICK,
                Click.at >= start, Click.at < start + timedelta(hours=hours))):
        bucket = buckets[int((at - start).total_seconds() // 3600)]
        bucket[1 if Verdict(verdict_value) is Verdict.HUMAN else 2] += 1
    last = max((index for index, (_, human, bot) in enumerate(buckets) if human or bot),
               default=-1)
    return [tuple(bucket) for bucket in buckets[:max(last + 1, 12)]]


def click_rates(digest_ids: list[int]) -> dict[int, float]:
    """The dashboard's column: each issue's share of delivered copies clicked by a person."""
    if not digest_ids:
        return {}
    delivered = dict(db.session.execute(
        select(Delivery.digest_id, func.count()).where(
            Delivery.digest_id.in_(digest_ids), Delivery.status == DeliveryStatus.SENT)
        .group_by(Delivery.digest_id)).all())
    copies = defaultdict(int, db.session.execute(
        select(Click.digest_id, func.count(distinct(Click.copy))).where(
            Click.digest_id.in_(digest_ids), Click.kind == ClickKind.CLICK,
            Click.verdict == Verdict.HUMAN).group_by(Click.digest_id)).all())
    for digest_id, count in db.session.execute(
            select(ClickDay.digest_id, func.sum(ClickDay.human_copies)).where(
                ClickDay.digest_id.in_(digest_ids), ClickDay.kind == ClickKind.CLICK)
            .group_by(ClickDay.digest_id)):
        copies[digest_id] += int(count or 0)
    return {digest_id: copies[digest_id] / delivered[digest_id]
            for digest_id in digest_ids if delivered.get(digest_id)}


def _csv_cell(value: object) -> object:
    """A cell a spreadsheet will not run as a formula (an article title is editors' text)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def as_csv(report: ClickReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    rows = [["section", "name", "url", "delivered", "human", "bot", "unique_human_copies",
             "click_rate"],
            ["issue", report.digest_id, "", report.delivered, report.human, report.bot,
             report.unique_human_copies, f"{report.click_rate:.4f}"]]
    rows += [["link", line.title, line.url, "", line.human, line.bot, "", ""]
             for line in report.links]
    rows += [["topic set", ", ".join(line.names) or "everything", "", line.delivered,
              line.human, line.bot, line.human_copies, f"{line.click_rate:.4f}"]
             for line in report.topic_sets]
    rows += [["topic section", line.name, "", line.delivered, line.human, line.bot, "", ""]
             for line in report.sections]
    rows += [["hour", hour.isoformat(), "", "", human, bot, "", ""]
             for hour, human, bot in report.over_time]
    if report.opens is not None:
        rows.append(["opens", "human (machine opens excluded)", "", "",
                     report.opens["human"], report.opens["bot"], "", ""])
        rows.append(["opens", "proxy prefetches (Apple MPP, image proxies)", "", "",
                     report.opens["proxy"], "", "", ""])
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    return out.getvalue()
