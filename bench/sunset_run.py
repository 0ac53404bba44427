"""Sunset run benchmark: what beat's daily sunset job costs for N readers.

    .venv/bin/python bench/sunset_run.py [--readers 20000] [--issues 8]

N readers each delivered ``issues`` weekly issues sent with per-reader tracking
(ledger rows written directly, not mailed), half of them with a person's click in
the last one. The job's body is timed when it asks the idle half (their
re-engagement mails owed; the tasks are published to Redis, nobody consumes them),
when it has nothing new to do, and when the grace has passed and it pauses them.
SQLite in a temporary folder unless NEWSLETTER_BENCH_DATABASE_URL is set; an
embedded Redis unless NEWSLETTER_BENCH_REDIS_URL is set.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import fresh_schema, scratch_services  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--issues", type=int, default=8)
    args = parser.parse_args()


    scratch, helpers, redis_url, database_url = scratch_services("bench-sunset-")
    os.environ.update({"NEWSLETTER_DATABASE_URL": database_url,
                       "NEWSLETTER_REDIS_URL": redis_url,
                       "NEWSLETTER_SECRET_KEY": "bench-" * 8,
                       "NEWSLETTER_SUPPRESSION_KEY": "pepper-" * 8,
                       "NEWSLETTER_TASK_QUEUE": "bench-sunset",
                       "NEWSLETTER_TRACK_READERS": "true",
                       "NEWSLETTER_SUNSET_AFTER_ISSUES": str(args.issues)})
    try:
        import time_machine
        from sqlalchemy import func, insert, select, text

        from newsletter import create_app
        from newsletter.db import unit_of_work
        from newsletter.extensions import db
        from newsletter.models import (
            Click,
            Delivery,
            DeliveryStatus,
            Digest,
            DigestStatus,
            ReaderSunset,
            Subscriber,
            SubscriberStatus,
            SunsetState,
            Verdict,
            utcnow,
        )
        from workers.tasks import run_sunset

        app = create_app()
        n = args.readers
        with app.app_context():
            fresh_schema(db)
            now = utcnow()
            with unit_of_work():
                db.session.execute(insert(Subscriber), [
                    {"email": f"reader{i}@example.com",
                     "email_normalized": f"reader{i}@example.com",
                     "status": SubscriberStatus.ACTIVE} for i in range(n)])
            ids = list(db.session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
            for week in range(args.issues, 0, -1):
                sent_at = now - timedelta(weeks=week)
                with unit_of_work():
                    digest = Digest(subject=f"Issue {week}", status=DigestStatus.SENT,
                                    started_at=sent_at, readers_tracked=True)
                    db.session.add(digest)
                    db.session.flush()
                    db.session.execute(insert(Delivery), [
                        {"digest_id": digest.id, "subscriber_id": reader, "attempts": 1,
                         "status": DeliveryStatus.SENT, "sent_at": sent_at} for reader in ids])
            with unit_of_work():  # the even half clicked the last issue
                db.session.execute(insert(Click), [
                    {"record_key": secrets.token_hex(8), "digest_id": digest.id, "link": 1,
                     "copy": 1, "verdict": Verdict.HUMAN, "reason": "browser",
                     "at": sent_at + timedelta(hours=1), "subscriber_id": reader}
                    for reader in ids[::2]])

            if db.engine.dialect.name == "postgresql":  # as a send leaves them (ledger)
                with db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as connection:
                    connection.execute(text("ANALYZE"))

            def timed() -> float:
                started = time.perf_counter()
                run_sunset()
                return time.perf_counter() - started

            def in_state(state: SunsetState) -> int:
                return db.session.scalar(select(func.count()).select_from(ReaderSunset)
                                         .where(ReaderSunset.state == state))

            ask = timed()
            asked = in_state(SunsetState.REENGAGING)
            idle = timed()
            with time_machine.travel(now + timedelta(days=15), tick=True):
                pause = timed()
            paused = in_state(SunsetState.PAUSED)
    finally:
        for helper in helpers:
            helper.terminate()
    rows = n * args.issues
    print(f"readers                       {n} x {args.issues} issues ({rows} ledger rows), "
          f"database {database_url.split(':')[0]}")
    print(f"judge all, ask the idle half  {ask:.2f} s ({n / ask:.0f} readers/s), {asked} asked")
    print(f"a run with nothing new        {idle:.2f} s ({n / idle:.0f} readers/s)")
    print(f"after the grace: pause        {pause:.2f} s, {paused} paused")


if __name__ == "__main__":
    main()
