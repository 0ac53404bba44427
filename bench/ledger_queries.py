"""Ledger queries at depth: the per-batch and periodic statements of a send, timed on a
million-row issue with none, half and 90 % of it sent.

    .venv/bin/python bench/ledger_queries.py [--rows 1000000] [--depths 0,0.5,0.9]
    NEWSLETTER_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/h_scale \\
        .venv/bin/python bench/ledger_queries.py

Seeds readers and one issue's ledger in SQL (generate_series on PostgreSQL, a
recursive CTE on SQLite), takes the planner's statistics once, as a send does
right after writing its rows, then moves the lowest ids to sent (as claims do)
without refreshing them: the worst case, autovacuum not having come by. At each
depth every query runs through the service's own functions (median of several
runs, in a transaction rolled back after, except the claim, which commits and is
undone) and, on PostgreSQL, prints the plan's top lines (EXPLAIN ANALYZE).
A query that costs the same at every depth does not grow with the audience.
Uses a SQLite file unless NEWSLETTER_BENCH_DATABASE_URL is set (its tables are
dropped and made again).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import fresh_schema  # noqa: E402

CLAIMS_IN_FLIGHT = 2  # batches holding rows at each depth (two workers)
RUNS = 5


def seed(db, rows: int) -> int:
    """``rows`` readers and one sending issue with a pending row for each; returns
    the issue's id."""
    from sqlalchemy import text

    postgres = db.engine.dialect.name == "postgresql"
    numbers = ("generate_series(1, :rows) AS s(n)" if postgres else
               "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
               "WHERE n < :rows) SELECT n FROM s) AS s")
    now = "now()" if postgres else "strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')"
    db.session.execute(text(f"""
        INSERT INTO subscribers (email, email_normalized, name, status, token_nonce,
                                 unsubscribe_key, created_at, updated_at, cadence)
        SELECT 'reader' || n || '@example.com', 'reader' || n || '@example.com',
               'Reader ' || n, 'active', 'nonce' || n, 'key' || n, {now}, {now}, 'weekly'
        FROM {numbers}"""), {"rows": rows})
    digest_id = db.session.execute(text(f"""
        INSERT INTO digests (subject, intro, status, recipients, created_at, started_at,
                             kind, segment_only)
        VALUES ('Depth', '', 'sending', :rows, {now}, {now}, 'issue', false)
        RETURNING id"""), {"rows": rows}).scalar_one()
    db.session.execute(text("""
        INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, resent_after_crash)
        SELECT :digest, id, 'pending', 0, false FROM subscribers"""), {"digest": digest_id})
    if postgres:
        # Autovacuum would refresh the statistics at some point of a real send; off
        # here, the plans below are those of the statistics a send starts with.
        db.session.execute(text("ALTER TABLE deliveries SET (autovacuum_enabled = false)"))
    from newsletter.delivery import ledger
    ledger.refresh_statistics()
    db.session.commit()
    return digest_id


def move_to_depth(db, digest_id: int, sent: int, batch: int) -> None:
    """The lowest ``sent`` rows sent, the next CLAIMS_IN_FLIGHT batches held."""
    from sqlalchemy import text

    first = db.session.execute(text("SELECT min(id) FROM deliveries WHERE digest_id = :d"),
                               {"d": digest_id}).scalar_one()
    db.session.execute(text("""
        UPDATE deliveries SET status = 'sent', sent_at = :now, attempts = 1,
               claim = 'done', lease_until = NULL
        WHERE digest_id = :d AND status <> 'sent' AND id < :upto"""),
                       {"d": digest_id, "upto": first + sent, "now": _now()})
    for n in range(CLAIMS_IN_FLIGHT):
        low = first + sent + n * batch
        db.session.execute(text("""
            UPDATE deliveries SET status = 'sending', claim = :claim, lease_until = :lease,
                   attempts = 1
            WHERE digest_id = :d AND id >= :low AND id < :high"""),
                           {"d": digest_id, "claim": f"claim{n}", "low": low,
                            "high": low + batch, "lease": _now() + timedelta(minutes=5)})
    db.session.commit()


def _now():
    from newsletter.models import utcnow
    return utcnow()


class Statements:
    """The statements a call runs, to EXPLAIN them after."""

    def __init__(self, engine):
        from sqlalchemy import event
        self.seen: list[tuple[str, object]] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, connection, cursor, statement, parameters, context, executemany):
        if self.on and not statement.lstrip().upper().startswith(("EXPLAIN", "SAVEPOINT",
                                                                   "RELEASE", "ROLLBACK")):
            self.seen.append((statement, parameters))


def queries(digest_id: int, depth_sent: int, after: int):
    """(name, call, commits) for each per-batch or periodic query of a send."""
    from newsletter.delivery import heartbeat, ledger
    from newsletter.issues import digests, reports
    from newsletter.issues.digests import _live_claims
    from newsletter.models import utcnow

    def claim():
        return ledger.claim_and_commit(digest_id, 100, "bench-claim", after=after)

    def sweep():
        now = utcnow()
        ledger.take_back(digest_id, now, heartbeat.dead(ledger.claims_held(digest_id)))

    return [
        ("claim (after the last id)", claim, True),
        ("claim (from the start)",
         lambda: ledger.claim_and_commit(digest_id, 100, "bench-claim"), True),
        ("live claims (after a batch)", lambda: _live_claims(digest_id), False),
        ("finish check (a chain's end, sweeps)", lambda: digests.finish_if_done(digest_id),
         False),
        ("sweeper: claims held + take back", sweep, False),
        ("sweeper: whole issue", lambda: digests.sweep_issue(digest_id, digests.DigestStatus
                                                             .SENDING), False),
        ("progress counts (report, CLI)", lambda: digests.progress(digest_id), False),
        ("per-relay counts (report)", lambda: reports.by_relay(digest_id), False),
    ]


def undo_claim(db, digest_id: int) -> None:
    from sqlalchemy import text
    db.session.execute(text("""
        UPDATE deliveries SET status = 'pending', claim = NULL, lease_until = NULL,
               attempts = 0
        WHERE digest_id = :d AND claim = 'bench-claim'"""), {"d": digest_id})
    db.session.commit()


def explain(db, statements: list[tuple[str, object]]) -> list[str]:
    """The top plan lines and execution time of each statement (PostgreSQL)."""
    lines = []
    connection = db.session.connection()
    raw = connection.connection.driver_connection
    for statement, parameters in statements:
        with raw.cursor() as cursor:
            cursor.execute("SAVEPOINT explain")
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters)
            plan = [row[0] for row in cursor.fetchall()]
            cursor.execute("ROLLBACK TO SAVEPOINT explain")
        first = " ".join(statement.split())[:90]
        nodes = [line.strip() for line in plan if "Scan" in line or "Sort" in line][:3]
        lines.append(f"      {first}")
        lines.append(f"        {plan[-1].strip()}; " + " | ".join(nodes))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--depths", default="0,0.5,0.9",
                        help="shares of the rows sent, comma-separated")
    parser.add_argument("--plans", action="store_true", help="print the plans (PostgreSQL)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    database_url = os.environ.get("NEWSLETTER_BENCH_DATABASE_URL") or \
        f"sqlite:///{scratch / 'bench.db'}"
    os.environ.update({"NEWSLETTER_DATABASE_URL": database_url,
                       "NEWSLETTER_REDIS_URL": os.environ.get(
                           "NEWSLETTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
                       "NEWSLETTER_SECRET_KEY": "bench-" * 8,
                       "NEWSLETTER_SUPPRESSION_KEY": "pepper-" * 8,
                       "NEWSLETTER_BASE_URL": "https://news.example.com"})
    from sqlalchemy import text

    from newsletter import create_app
    from newsletter.extensions import db

    app = create_app()
    with app.app_context():
        fresh_schema(db)
        started = time.perf_counter()
        digest_id = seed(db, args.rows)
        print(f"database {db.engine.dialect.name}, {args.rows:,} rows seeded in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        postgres = db.engine.dialect.name == "postgresql"
        if postgres:
            # A sequential scan from the table's first page, not from wherever the last
            # one stopped (synchronised scans): the worst case, every time.
            from sqlalchemy import event

            def no_synchronised_scans(connection, record):
                with connection.cursor() as cursor:
                    cursor.execute("SET synchronize_seqscans = off")
                connection.commit()

            db.session.remove()
            event.listen(db.engine, "connect", no_synchronised_scans)
            db.engine.dispose()
        recorder = Statements(db.engine)
        first = db.session.execute(text("SELECT min(id) FROM deliveries WHERE digest_id = :d"),
                                   {"d": digest_id}).scalar_one()
        figures: dict[str, list[str]] = {}
        # The claims in flight are alive, as in a running send: the sweeper leaves them.
        from newsletter.delivery.heartbeat import Heartbeat
        beats = [Heartbeat(f"claim{n}") for n in range(CLAIMS_IN_FLIGHT)]
        for beat in beats:
            beat.__enter__()
        for depth in (float(value) for value in args.depths.split(",")):
            sent = int(args.rows * depth)
            move_to_depth(db, digest_id, sent, 100)
            after = first + sent + CLAIMS_IN_FLIGHT * 100 - 1
            print(f"\n{depth:.0%} sent ({sent:,} rows)", flush=True)
            for name, call, commits in queries(digest_id, sent, after):
                times = []
                for _ in range(RUNS):
                    recorder.seen, recorder.on = [], True
                    began = time.perf_counter()
                    call()
                    times.append((time.perf_counter() - began) * 1000)
                    recorder.on = False
                    seen = recorder.seen
                    if commits:
                        undo_claim(db, digest_id)
                    else:
                        db.session.rollback()
                median = statistics.median(times)
                figures.setdefault(name, []).append(f"{median:8.2f}")
                print(f"  {name:<36} {median:8.2f} ms (median of {RUNS})", flush=True)
                if postgres and args.plans:
                    for line in explain(db, seen):
                        print(line)
                    db.session.rollback()
        for beat in beats:
            beat.__exit__(None, None, None)
        print("\nms per call at " + ", ".join(args.depths.split(",")) + " of the rows sent")
        for name, values in figures.items():
            print(f"  {name:<36} {' '.join(values)}")
        if postgres:
            db.session.execute(text("ALTER TABLE deliveries RESET (autovacuum_enabled)"))
            db.session.commit()


if __name__ == "__main__":
    main()
