"""Subscribe benchmark: the JSON subscribe endpoint against a hello-world Flask endpoint.

    .venv/bin/python bench/subscribe.py [--database-url URL] [--duration 10]
        [--connections 32] [--workers 2] [--redis-url URL]

Both run under gunicorn (the same number of sync workers) and are loaded by
Debian's ``wrk`` with the same Lua script (bench/subscribe.lua: a new address
in every request). Prints requests per second, p50 and p99 latency of each and
the ratio subscribe / hello-world. The database is a fresh SQLite file unless
``--database-url`` names another (e.g. PostgreSQL: it is migrated, and the
requests the bench leaves are deleted at the end). Redis is an embedded server
unless ``--redis-url`` is given. No worker runs: the figure is the request path
(validate, record, publish); the per-IP limiter is in the path with a limit
high enough never to trip.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.devstack import free_port, start_embedded_redis, wait_for_port  # noqa: E402

LUA = ROOT / "bench" / "subscribe.lua"
PATH = "/api/v1/subscriptions"


def gunicorn(app_spec: str, port: int, workers: int, threads: int,
             env: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app_spec],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    return process


def wrk(port: int, seconds: int, connections: int) -> dict:
    result = subprocess.run(
        ["wrk", "--threads", "2", "--connections", str(connections), "--duration",
         f"{seconds}s", "--latency", "--script", str(LUA), f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True)
    return parse_wrk(result.stdout)


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> dict:
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        figures[key] = _ms(re.search(rf"^\s+{label}\s+(\S+)", output, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = int(errors.group(1)) if errors else 0
    figures["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    return figures


def measure(name: str, app_spec: str, env: dict, args) -> dict:
    port = free_port()
    server = gunicorn(app_spec, port, args.workers, args.threads, env)
    try:
        wrk(port, 3, args.connections)  # warm up: imports, pools, first connections
        figures = wrk(port, args.duration, args.connections)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{name:<12} {figures['rps']:>9.0f} req/s   p50 {figures['p50']:>7.2f} ms   "
          f"p99 {figures['p99']:>7.2f} ms   non-2xx {figures['non_2xx']}", flush=True)
    return figures


def prepare_database(env: dict) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "newsletter", "db", "upgrade"],
                   cwd=ROOT, env=env, check=True, capture_output=True)


def leftover_requests(env: dict, delete: bool) -> int:
    """Requests the bench recorded (no worker ran); deleted when asked."""
    code = ("from newsletter import create_app\n"
            "from newsletter.extensions import db\n"
            "from newsletter.models import SubscribeRequest\n"
            "from sqlalchemy import delete, func, select\n"
            "with create_app().app_context():\n"
            "    print(db.session.scalar(select(func.count()).select_from(SubscribeRequest)))\n"
            f"    if {delete}:\n"
            "        db.session.execute(delete(SubscribeRequest)); db.session.commit()\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="",
                        help="SQLAlchemy URL [default: a fresh SQLite file]")
    parser.add_argument("--redis-url", default="", help="[default: an embedded redis-server]")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker (1: sync workers; more: gthread workers)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="bench-subscribe-") as folder:
        redis = None
        redis_url = args.redis_url
        if not redis_url:
            redis_port = free_port()
            redis = start_embedded_redis(Path(folder), redis_port)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        database_url = args.database_url or f"sqlite:///{folder}/bench.db"
        env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url,
               "NEWSLETTER_REDIS_URL": redis_url,
               "NEWSLETTER_SECRET_KEY": secrets.token_hex(32),
               "NEWSLETTER_SUPPRESSION_KEY": secrets.token_hex(32),
               "NEWSLETTER_TASK_QUEUE": f"bench-{os.getpid()}",
               "NEWSLETTER_SUBSCRIBE_RATE_LIMIT": "100000000 per minute"}
        try:
            prepare_database(env)
            kind = database_url.split(":", 1)[0].split("+", 1)[0]
            print(f"gunicorn {args.workers} workers x {args.threads} thread(s), "
                  f"wrk {args.connections} connections, "
                  f"{args.duration} s, database {kind}", flush=True)
            hello = measure("hello-world", "bench.hello_app:app", env, args)
            time.sleep(1)
            subscribe = measure("subscribe", "newsletter:create_app()", env, args)
            recorded = leftover_requests(env, delete=bool(args.database_url))
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait(timeout=10)
    print(f"ratio {subscribe['rps'] / hello['rps']:.2f} of hello-world's requests/s; "
          f"{recorded} subscribe requests recorded")


if __name__ == "__main__":
    main()
