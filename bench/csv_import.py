"""CSV import benchmark: N rows through the import job, in a real Celery worker.

    .venv/bin/python bench/csv_import.py [--rows 1000000] [--no-consent]

Writes an N-row CSV, posts it to /admin/subscribers/import as an editor would (the
request stores the file and returns), lets a solo worker process run the check
job, then the import job, and prints how long each took and the worker's peak
RSS (VmHWM). SQLite in a temporary folder unless NEWSLETTER_BENCH_DATABASE_URL is set;
an embedded Redis unless NEWSLETTER_BENCH_REDIS_URL is set.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import fresh_schema, scratch_services  # noqa: E402


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-consent", action="store_true",
                        help="import as pending, owing a confirmation each (paced by SEND_RATE)")
    args = parser.parse_args()


    scratch, helpers, redis_url, database_url = scratch_services("bench-import-")
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url,
           "NEWSLETTER_REDIS_URL": redis_url, "NEWSLETTER_SECRET_KEY": "bench-" * 8,
           "NEWSLETTER_SUPPRESSION_KEY": "pepper-" * 8, "NEWSLETTER_TASK_QUEUE": "bench",
           "NEWSLETTER_SEND_RATE": "50", "NEWSLETTER_LOGIN_RATE_LIMIT": "1000 per minute"}
    os.environ.update(env)
    csv_path = scratch / "list.csv"
    with csv_path.open("w") as file:
        file.write("email,name\n")
        for n in range(args.rows):
            file.write(f"reader{n}@example.com,Reader {n}\n")
    worker = None
    try:
        from newsletter import create_app
        from newsletter.db import unit_of_work
        from newsletter.editors import accounts
        from newsletter.extensions import db
        from newsletter.models import ImportStatus
        from newsletter.readers import subscriber_lists

        app = create_app()
        with app.app_context():
            fresh_schema(db)
            with unit_of_work():
                accounts.create_editor("bench@example.com", "bench password 123")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
             "solo", "--loglevel", "WARNING", "-Q", "bench.maintenance"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(4)
        idle_rss = peak_rss_mib(worker.pid)

        app.config["WTF_CSRF_ENABLED"] = False
        client = app.test_client()
        client.post("/admin/login", data={"email": "bench@example.com",
                                          "password": "bench password 123"})
        consent = "" if args.no_consent else "benchmark"

        def run_job(data: dict) -> tuple[float, float, int]:
            started = time.perf_counter()
            response = client.post("/admin/subscribers/import", data=data,
                                   content_type="multipart/form-data")
            answered = time.perf_counter() - started
            job_id = int(response.headers["Location"].rsplit("/", 1)[1])
            with app.app_context():
                while True:
                    job = subscriber_lists.import_job(job_id)
                    if job.status in (ImportStatus.DONE, ImportStatus.FAILED):
                        break
                    time.sleep(0.2)
                assert job.status == ImportStatus.DONE, job.error
            return answered, time.perf_counter() - started, job

        with csv_path.open("rb") as file:
            answered_check, check_time, check = run_job(
                {"file": (file, "list.csv"), "consent": consent, "action": "check"})
        answered_write, write_time, written = run_job(
            {"upload": check.upload, "consent": consent, "action": "import"})
        peak = peak_rss_mib(worker.pid)
    finally:
        if worker:
            worker.terminate()
            worker.wait(timeout=30)
        for helper in helpers:
            helper.terminate()
    size = csv_path.stat().st_size / 1e6
    print(f"rows                     {args.rows} ({size:.1f} MB), "
          f"{'pending + confirmation owed' if args.no_consent else 'confirmed (consent)'}")
    print(f"database                 {database_url.split(':')[0]}")
    print(f"upload request answered  {answered_check:.2f} s (stores the file, starts the job)")
    print(f"check job                {check_time:.1f} s ({check.valid / check_time:.0f} rows/s)")
    print(f"import request answered  {answered_write:.2f} s")
    print(f"import job               {write_time:.1f} s ({written.valid / write_time:.0f} rows/s)")
    print(f"worker peak RSS          {peak:.0f} MiB (idle worker: {idle_rss:.0f} MiB)")


if __name__ == "__main__":
    main()
