"""Sequence run benchmark: what beat's sequence run costs for N readers.

    .venv/bin/python bench/sequence_run.py [--readers 20000] [--french] [--window]

N readers confirm after a two-step sequence was made; the run is timed when it
enrols them all and writes step 1's ledger rows, when it has nothing to do, when it
moves them all past step 1 (rows marked sent here, not mailed: the send loop has
its own benchmark, bench/dispatch.py) and writes step 2's rows, and once every
reader has completed. ``--french``: every other reader is French and step 1 has
French words (one copy per language). ``--window``: quiet hours (00:00-23:59, so
every step still goes) read on each reader's clock, the readers spread over four
time zones. SQLite in a
temporary folder unless NEWSLETTER_BENCH_DATABASE_URL is set; an embedded Redis
unless NEWSLETTER_BENCH_REDIS_URL is set (the step's batch tasks are published
to it, nobody consumes them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import fresh_schema, scratch_services  # noqa: E402

ZONES = ("Asia/Tokyo", "Europe/Paris", "America/New_York", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--french", action="store_true", help="half the readers French")
    parser.add_argument("--window", action="store_true", help="quiet hours, reader time")
    args = parser.parse_args()


    scratch, helpers, redis_url, database_url = scratch_services("bench-sequences-")
    os.environ.update({"NEWSLETTER_DATABASE_URL": database_url,
                       "NEWSLETTER_REDIS_URL": redis_url,
                       "NEWSLETTER_SECRET_KEY": "bench-" * 8,
                       "NEWSLETTER_SUPPRESSION_KEY": "pepper-" * 8,
                       "NEWSLETTER_TASK_QUEUE": "bench-sequences",
                       "NEWSLETTER_LANGUAGES": "en,fr" if args.french else "en",
                       "NEWSLETTER_SEND_IN_READER_TIME": str(args.window).lower()})
    try:
        from sqlalchemy import insert, update

        from newsletter import create_app
        from newsletter.db import unit_of_work
        from newsletter.extensions import db
        from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus, utcnow
        from newsletter.sequences import runner, steps

        app = create_app()
        with app.app_context():
            fresh_schema(db)
            with unit_of_work():
                sequence = steps.create_sequence("welcome")
                french = {"fr": {"subject": "Bienvenue", "body": "Bonjour **à vous**."}}
                steps.add_step("welcome", "0s", "Welcome", "Hello **there**.",
                               french if args.french else None)
                steps.add_step("welcome", "1d", "Our best", "Three pieces.")
                if args.window:
                    steps.set_window("welcome", "00:00-23:59")
                sequence_id = sequence.id
            entered = utcnow()
            with unit_of_work():
                db.session.execute(insert(Subscriber), [
                    {"email": f"reader{n}@example.com",
                     "email_normalized": f"reader{n}@example.com",
                     "status": SubscriberStatus.ACTIVE, "confirmed_at": entered,
                     "language": "fr" if args.french and n % 2 else None,
                     "timezone": ZONES[n % len(ZONES)] if args.window else None}
                    for n in range(args.readers)])

            def timed(moment) -> tuple[float, dict]:
                started = time.perf_counter()
                with unit_of_work():
                    done = runner.run(sequence_id, now=moment)
                return time.perf_counter() - started, done

            first, first_done = timed(entered)
            idle, _ = timed(entered + timedelta(seconds=1))
            with unit_of_work():
                db.session.execute(update(Delivery).values(status=DeliveryStatus.SENT,
                                                           sent_at=utcnow()))
            second, second_done = timed(entered + timedelta(days=1, seconds=1))
            with unit_of_work():
                db.session.execute(update(Delivery).values(status=DeliveryStatus.SENT,
                                                           sent_at=utcnow()))
            timed(entered + timedelta(days=1, seconds=2))  # past step 2
            timed(entered + timedelta(days=1, seconds=3))  # completed
            settled, _ = timed(entered + timedelta(days=1, seconds=4))
    finally:
        for helper in helpers:
            helper.terminate()
    n = args.readers
    print(f"readers                       {n}, database {database_url.split(':')[0]}"
          f"{', half French' if args.french else ''}"
          f"{', quiet hours in 4 zones' if args.window else ''}")
    print(f"enrol all + write step 1      {first:.2f} s ({n / first:.0f} readers/s) {first_done}")
    print(f"a run with nothing to do      {idle * 1000:.0f} ms")
    print(f"advance all + write step 2    {second:.2f} s ({n / second:.0f} readers/s) "
          f"{second_done}")
    print(f"a run once all completed      {settled * 1000:.0f} ms")


if __name__ == "__main__":
    main()
