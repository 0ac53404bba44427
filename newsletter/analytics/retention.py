"""Raw click rows older than CLICK_RETENTION_DAYS folded into daily counts.

A folded day keeps, per issue, copy's topic set, link and kind: human, bot and proxy
counts and the number of distinct copies clicked by a person that day. The rows
themselves (and with them any reader id) are deleted.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from newsletter.extensions import db
from newsletter.models import Click, ClickDay, Verdict, utcnow

FOLD_BATCH = 5000


def fold_old_clicks(now: datetime | None = None, limit: int = FOLD_BATCH) -> int:
    """Fold up to ``limit`` of the oldest expired rows (the caller commits and calls
    again while it returns ``limit``); returns how many rows were folded."""
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["CLICK_RETENTION_DAYS"])
    rows = db.session.execute(
        select(Click.id, Click.digest_id, Click.variant_id, Click.kind, Click.link, Click.at,
               Click.verdict, Click.copy)
        .where(Click.at < cutoff).order_by(Click.id).limit(limit)).all()
    if not rows:
        return 0
    days: dict[tuple, dict] = defaultdict(lambda: {"human": 0, "bot": 0, "proxy": 0,
                                                    "copies": set()})
    for _, digest_id, variant_id, kind, link, at, verdict, copy in rows:
        day = days[(digest_id, variant_id, kind, link, at.date())]
        day[Verdict(verdict).value] += 1
        if Verdict(verdict) is Verdict.HUMAN:
            day["copies"].add(copy)
    for (digest_id, variant_id, kind, link, day), counts in days.items():
        folded = db.session.scalar(select(ClickDay).where(
            ClickDay.digest_id == digest_id, ClickDay.kind == kind, ClickDay.link == link,
            ClickDay.day == day,
            ClickDay.variant_id.is_(None) if variant_id is None
            else ClickDay.variant_id == variant_id))
        if folded is None:
            folded = ClickDay(digest_id=digest_id, variant_id=variant_id, kind=kind, link=link,
                              day=day, human=0, bot=0, proxy=0, human_copies=0)
            db.session.add(folded)
        folded.human += counts["human"]
        folded.bot += counts["bot"]
        folded.proxy += counts["proxy"]
        folded.human_copies += len(counts["copies"])
    db.session.execute(delete(Click).where(Click.id.in_([row[0] for row in rows])))
    db.session.flush()
    return len(rows)
