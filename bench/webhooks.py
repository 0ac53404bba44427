"""Webhook benchmark: request latency with a hanging webhook endpoint vs with none.

    .venv/bin/python bench/webhooks.py [--database-url URL] [--duration 10]
        [--connections 16] [--workers 2] [--readers 60000]

Two requests are measured with Debian's ``wrk`` under gunicorn: the JSON subscribe
(bench/subscribe.lua) and an API unsubscribe (bench/webhooks.lua), which writes a
``subscriber.unsubscribed`` webhook event and its delivery in the request's
transaction. Each runs three times: with no webhook endpoint (no event is written),
with an endpoint that answers 200 at once, and with one that accepts the connection
and never answers; in the last two a real Celery worker on the webhooks queue
delivers (each attempt to the hanging one cut off at NEWSLETTER_WEBHOOK_DEADLINE).
Prints requests per second, p50 and p99 of each run. The request path only writes
rows and publishes after commit, so a hanging endpoint should cost no more than an
answering one.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.subscribe import gunicorn, parse_wrk  # noqa: E402
from newsletter.devstack import free_port, start_embedded_redis  # noqa: E402

SUBSCRIBE_LUA = ROOT / "bench" / "subscribe.lua"
UNSUBSCRIBE_LUA = ROOT / "bench" / "webhooks.lua"


def flask_python(env: dict, code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def prepare(env: dict, readers: int) -> str:
    """Migrated database, ``readers`` active readers, an owner's token (printed)."""
    subprocess.run([sys.executable, "-m", "flask", "--app", "newsletter", "db", "upgrade"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return flask_python(env, f"""
from sqlalchemy import insert
from newsletter import create_app
from newsletter.db import unit_of_work
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
with create_app().app_context():
    with unit_of_work():
        accounts.create_editor("owner@bench.example", "bench password 1")
        token, _ = accounts.create_api_token("owner@bench.example", "bench",
                                             ["subscribers:write"])
    for start in range(0, {readers}, 5000):
        with unit_of_work():
            db.session.execute(insert(Subscriber), [
                {{"email": f"r{{n}}@bench.example", "email_normalized": f"r{{n}}@bench.example",
                  "status": SubscriberStatus.ACTIVE}}
                for n in range(start, min(start + 5000, {readers}))])
    print(token)
""")


def add_endpoint(env: dict, url: str) -> str:
    """The new endpoint's id."""
    added = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "newsletter", "webhooks", "add", url,
         "--events", "subscriber.unsubscribed,subscriber.confirmed",
         "--secret", "bench-secret-of-16-bytes"], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True)
    return added.stdout.strip().splitlines()[-1].split("=", 1)[1]


def remove_endpoint(env: dict, endpoint_id: str) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "newsletter", "webhooks", "remove",
                    endpoint_id], cwd=ROOT, env=env, check=True, capture_output=True)


class AnsweringEndpoint:
    """Answers every POST with 200 at once."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def owed_deliveries(env: dict) -> str:
    return flask_python(env, """
from sqlalchemy import func, select
from newsletter import create_app
from newsletter.extensions import db
from newsletter.models import WebhookDelivery
with create_app().app_context():
    rows = db.session.execute(select(WebhookDelivery.status, func.count())
                              .group_by(WebhookDelivery.status)).all()
    print(", ".join(f"{s.value} {n}" for s, n in rows) or "none")
""")


class HangingEndpoint:
    """Accepts connections and never answers (until stopped)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except TimeoutError:
                continue
            except OSError:  # closed
                return

    def close(self):
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def wrk(port: int, seconds: int, connections: int, script: Path, *args: str) -> dict:
    command = ["wrk", "--threads", "2", "--connections", str(connections), "--duration",
               f"{seconds}s", "--latency", "--script", str(script),
               f"http://127.0.0.1:{port}/api/v1/subscriptions"]
    if args:
        command += ["--", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    figures = parse_wrk(result.stdout)
    errors = re.search(r"Socket errors: (.*)", result.stdout)
    figures["socket_errors"] = errors.group(1) if errors else "none"
    return figures


def wait_for_workers(port: int, workers: int, timeout: float = 120) -> None:
    """gunicorn listens before its workers have imported the app: on a busy machine
    that takes seconds, which a short wrk run would count as no requests at all."""
    import urllib.request

    deadline, answered = time.monotonic() + timeout, 0
    while answered < workers * 4:
        if time.monotonic() > deadline:
            sys.exit(f"gunicorn on port {port} did not answer within {timeout:g} s")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/live", timeout=5):
                answered += 1
        except OSError:
            time.sleep(0.2)


def run(label: str, env: dict, args, token: str, first_id: int) -> None:
    port = free_port()
    server = gunicorn("newsletter:create_app()", port, args.workers, 1, env)
    span = args.readers // 3
    try:
        wait_for_workers(port, args.workers)
        wrk(port, 2, args.connections, SUBSCRIBE_LUA)  # warm up
        for name, figures in (
                ("subscribe", wrk(port, args.duration, args.connections, SUBSCRIBE_LUA)),
                ("unsubscribe", wrk(port, args.duration, args.connections, UNSUBSCRIBE_LUA,
                                    str(first_id), str(span), token))):
            print(f"{label:<18} {name:<12} {figures['rps']:>7.0f} req/s   "
                  f"p50 {figures['p50']:>7.2f} ms   p99 {figures['p99']:>7.2f} ms   "
                  f"non-2xx {figures['non_2xx']}   socket errors {figures['socket_errors']}",
                  flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="",
                        help="SQLAlchemy URL of an empty database [default: a fresh SQLite file]")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--readers", type=int, default=60000,
                        help="readers seeded; each run unsubscribes from its own third")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as folder:
        redis_port = free_port()
        redis = start_embedded_redis(Path(folder), redis_port)
        env = {**os.environ,
               "NEWSLETTER_DATABASE_URL": args.database_url or f"sqlite:///{folder}/bench.db",
               "NEWSLETTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
               "NEWSLETTER_SECRET_KEY": secrets.token_hex(32),
               "NEWSLETTER_SUPPRESSION_KEY": secrets.token_hex(32),
               "NEWSLETTER_TASK_QUEUE": f"bench-{os.getpid()}",
               "NEWSLETTER_SUBSCRIBE_RATE_LIMIT": "100000000 per minute",
               "NEWSLETTER_WEBHOOK_ALLOW_PRIVATE": "true",
               "NEWSLETTER_WEBHOOK_DEADLINE": "5", "NEWSLETTER_LOG_LEVEL": "error"}
        hanging, answering, worker = HangingEndpoint(), AnsweringEndpoint(), None
        third = args.readers // 3
        try:
            token = prepare(env, args.readers)
            print(f"gunicorn {args.workers} workers, wrk {args.connections} connections, "
                  f"{args.duration} s per run", flush=True)
            run("no endpoint", env, args, token, first_id=1)
            answering_id = add_endpoint(env, answering.url)
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q",
                 f"{env['NEWSLETTER_TASK_QUEUE']}.webhooks", "--pool", "prefork",
                 "--concurrency", "2", "--loglevel", "ERROR", "-n", f"bench{os.getpid()}@%h"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)  # the worker connects; the figures below do not depend on it
            run("answering endpoint", env, args, token, first_id=1 + third)
            print(f"  webhook deliveries: {owed_deliveries(env)}", flush=True)
            remove_endpoint(env, answering_id)
            add_endpoint(env, hanging.url)
            run("hanging endpoint", env, args, token, first_id=1 + 2 * third)
            print(f"  webhook deliveries: {owed_deliveries(env)}; the hanging endpoint held "
                  f"{len(hanging.held)} connection(s)")
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
            hanging.close()
            answering.close()
            redis.terminate()
            redis.wait(timeout=10)


if __name__ == "__main__":
    main()
