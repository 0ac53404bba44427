"""CSV import benchmark: check (dry run) and import N rows with a consent statement.

    .venv/bin/python bench/csv_import.py [--rows 100000]

Uses a SQLite file in a temporary folder unless NEWSLETTER_BENCH_DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-import-")
    database_url = os.environ.get("NEWSLETTER_BENCH_DATABASE_URL") or \
        f"sqlite:///{scratch}/bench.db"

    from newsletter import create_app
    from newsletter.extensions import db
    from newsletter.services import subscriber_lists

    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    data = ("email,name\n" + "".join(f"reader{n}@example.com,Reader {n}\n"
                                     for n in range(args.rows))).encode()
    with app.app_context():
        db.drop_all()
        db.create_all()
        started = time.perf_counter()
        report = subscriber_lists.import_csv(data, "benchmark", dry_run=True)
        checked = time.perf_counter() - started
        started = time.perf_counter()
        subscriber_lists.import_csv(data, "benchmark")
        imported = time.perf_counter() - started
    print(f"rows                   {args.rows} ({len(data) / 1e6:.1f} MB)")
    print(f"database               {database_url.split(':')[0]}")
    print(f"dry run                {checked:.1f} s ({report.valid / checked:.0f} rows/s)")
    print(f"import with consent    {imported:.1f} s ({report.valid / imported:.0f} rows/s)")


if __name__ == "__main__":
    main()
