"""Redirect benchmark: the tracked-link redirect against a hello-world endpoint, and the
cost of link rewriting per message.

    .venv/bin/python bench/redirect.py [--duration 10] [--connections 32] [--workers 2]
        [--threads 1] [--copies 2000] [--rounds 3] [--messages 20000]

1. Both apps run under gunicorn (the same sync workers) and are loaded by Debian's
   ``wrk``; every request is a genuine tracked link of one of ``--copies`` copies of
   a sent issue (a Lua script walks through them), with a browser's user agent, so
   each is judged, goes through the Redis script and is queued. Measures the two
   alternately ``--rounds`` times; prints requests/s, p50 and p99 of each, the CPU
   per request of gunicorn's workers, Redis and wrk (which the machine's other load
   moves far less than requests/s), the load average, and the ratios; then drains the queue
   (the beat job's task body) and prints how many clicks were stored.
2. Builds ``--messages`` digest messages in-process with and without link rewriting
   (render once per variant, then per recipient: the unsubscribe URL and, when
   tracking, the copy token) and prints messages/s of each and the ratio. For the
   whole send through a worker and an SMTP sink, run bench/dispatch.py with
   NEWSLETTER_TRACK_CLICKS=true and then =false.
Embedded Redis and a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import http.client
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

from bench.subscribe import gunicorn, parse_wrk, prepare_database  # noqa: E402
from newsletter.devstack import free_port, start_embedded_redis  # noqa: E402

BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")


def make_issue(env: dict, copies: int, folder: Path) -> Path:
    """A sent issue of three articles, and a wrk script walking ``copies`` copies' links."""
    code = f"""
import time
from datetime import UTC, datetime, timedelta
from newsletter import create_app
from newsletter.analytics import tracking
from newsletter.content import articles
from newsletter.content.articles import ArticleInput
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Digest, DigestStatus
app = create_app()
with app.app_context(), unit_of_work():
    added = [articles.add_article(ArticleInput(title=f"Story {{n}}",
             url=f"https://news.example.com/story-{{n}}", summary="A story.",
             published_at=datetime.now(UTC)), "api")[0] for n in range(3)]
    digest = Digest(subject="Bench", status=DigestStatus.SENT,
                    started_at=datetime.now(UTC) - timedelta(hours=1))
    digest.articles.extend(added)
    db.session.add(digest)
    db.session.flush()
    signer = tracking.signer()
    sent_at = int(time.time()) - 3600
    for copy in range(1, {copies} + 1):
        for article in added:
            print("/r/%s/%s" % (signer.link_token(digest.id, None, article.id),
                                signer.copy_token(digest.id, copy, sent_at)))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    paths = [line for line in result.stdout.splitlines() if line.startswith("/r/")]
    script = folder / "redirect.lua"
    script.write_text(
        "paths = {" + ",".join(f'"{path}"' for path in paths) + "}\n"
        "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        "  return wrk.format('GET', paths[(counter % #paths) + 1])\n"
        "end\n")
    return script


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def wrk(port: int, seconds: int, connections: int, script: Path,
        watched: dict[str, list[int]] | None = None) -> dict:
    """wrk's figures; with ``watched`` (name -> pids) also each one's CPU per request
    (µs), a figure the machine's other load does not move much."""
    before = {name: sum(map(cpu_seconds, pids)) for name, pids in (watched or {}).items()}
    process = subprocess.Popen(
        ["wrk", "--threads", "2", "--connections", str(connections), "--duration",
         f"{seconds}s", "--latency", "--header", f"User-Agent: {BROWSER}",
         "--header", "Host: news.example.com",  # the app answers only its BASE_URL host
         "--timeout", "10s", "--script", str(script), f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE, text=True)
    # wrk's own CPU: read while it still exists (it is reaped by communicate)
    pids = {**(watched or {}), "wrk": [process.pid]}
    before["wrk"] = 0.0
    last = {}
    while process.poll() is None:
        last = {name: sum(map(cpu_seconds, found)) for name, found in pids.items()}
        time.sleep(0.05)
    output = process.communicate()[0]
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, "wrk", output)
    figures = parse_wrk(output)
    if watched:
        final = {name: sum(map(cpu_seconds, found)) for name, found in watched.items()}
        final["wrk"] = last.get("wrk", 0.0)
        figures["cpu_us"] = {name: (final[name] - before[name]) / figures["requests"] * 1e6
                             for name in final}
    return figures


def wait_for_workers(port: int, path: str, timeout: float = 120) -> None:
    """gunicorn binds before its workers have loaded the app: wait until they answer."""
    deadline = time.monotonic() + timeout
    answered = 0
    while answered < 8:  # a few answers: every worker is up, not only the first
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path, headers={"Host": "news.example.com",
                                                     "User-Agent": BROWSER})
            answered += connection.getresponse().status < 400
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            connection.close()


def measure(name: str, app_spec: str, env: dict, args, script: Path, redis_pid: int) -> dict:
    port = free_port()
    server = gunicorn(app_spec, port, args.workers, args.threads, env)
    try:
        first = re.search(r'"(/r/[^"]+)"', script.read_text()).group(1)
        wait_for_workers(port, first)
        wrk(port, 3, args.connections, script)  # warm up
        figures = wrk(port, args.duration, args.connections, script,
                      {"workers": workers_of(server.pid), "redis": [redis_pid]})
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{name:<12} {figures['rps']:>9.0f} req/s   p50 {figures['p50']:>7.2f} ms   "
          f"p99 {figures['p99']:>7.2f} ms   non-2xx/3xx {figures['non_2xx']}   CPU per "
          "request: " + ", ".join(f"{who} {us:.0f} µs" for who, us in figures["cpu_us"].items())
          + f"   load {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    return figures


def drain(env: dict) -> str:
    code = ("from newsletter import create_app\n"
            "from newsletter.analytics import clicks\n"
            "from newsletter.models import Click, Verdict\n"
            "from newsletter.extensions import db\n"
            "from workers.tasks import store_clicks\n"
            "with create_app().app_context():\n"
            "    store_clicks()\n"
            "    human = db.session.query(Click).filter(Click.verdict == Verdict.HUMAN).count()\n"
            "    print(db.session.query(Click).count(), human, clicks.waiting())\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def build_rate(env: dict, messages: int) -> str:
    """Messages built per second, with and without tracked links (in-process)."""
    code = f"""
import time
from newsletter import create_app
from newsletter.delivery import dispatch
from newsletter.extensions import db
from newsletter.models import Digest
app = create_app()
rates = {{}}
with app.test_request_context():
    digest = db.session.query(Digest).first()
    for tracked in (False, True) * 4:
        app.config["TRACK_CLICKS"] = tracked
        dispatch._factories.clear()
        start = time.perf_counter()
        factory = dispatch._factory(digest, None)
        for n in range({messages}):
            factory.build(n + 1, f"reader{{n}}@example.com", "A Reader",
                          f"https://news.example.com/unsubscribe/key{{n}}")
        rates.setdefault(tracked, []).append({messages} / (time.perf_counter() - start))
print(max(rates[False]), max(rates[True]))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker (1: sync workers; more: gthread workers, "
                             "which overlap the redirect's Redis round trips)")
    parser.add_argument("--copies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="hello-world and redirect measured alternately this many times")
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="bench-redirect-") as folder:
        redis_port = free_port()
        redis = start_embedded_redis(Path(folder), redis_port)
        env = {**os.environ, "NEWSLETTER_DATABASE_URL": f"sqlite:///{folder}/bench.db",
               "NEWSLETTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
               "NEWSLETTER_SECRET_KEY": secrets.token_hex(32),
               "NEWSLETTER_SUPPRESSION_KEY": secrets.token_hex(32),
               "NEWSLETTER_BASE_URL": "https://news.example.com",
               "NEWSLETTER_TASK_QUEUE": f"bench-{os.getpid()}"}
        try:
            prepare_database(env)
            script = make_issue(env, args.copies, Path(folder))
            print(f"gunicorn {args.workers} workers x {args.threads} thread(s), "
                  f"wrk {args.connections} connections, "
                  f"{args.duration} s, {args.copies} copies x 3 links", flush=True)
            pairs = []
            for _ in range(args.rounds):  # alternating, so both see the same load
                hello = measure("hello-world", "bench.hello_app:app", env, args, script,
                                redis.pid)
                redirect = measure("redirect", "newsletter:create_app()", env, args, script,
                                   redis.pid)
                pairs.append((hello, redirect))
                print(f"  ratio {redirect['rps'] / hello['rps']:.2f} of hello-world's "
                      "requests/s; of its CPU per request (workers + Redis + wrk) "
                      f"{sum(hello['cpu_us'].values()) / sum(redirect['cpu_us'].values()):.2f}",
                      flush=True)
            stored, human, left = drain(env).split()
            without, tracked = map(float, build_rate(env, args.messages).split())
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    ratios = sorted(redirect["rps"] / hello["rps"] for hello, redirect in pairs)
    median = ratios[(len(ratios) - 1) // 2]  # the lower one of an even count
    print(f"ratio (median of {len(pairs)}) {median:.2f} of hello-world's "
          f"requests/s (bar >= 0.5); redirect p99 "
          + ", ".join(f"{redirect['p99']:.1f}" for _, redirect in pairs) + " ms (bar <= 30 ms)")
    print(f"clicks stored {stored}, {human} of them human (the bench clicks each copy's "
          f"three links back to back: a burst), left in the queue {left}")
    print(f"message build without tracking {without:.0f} msg/s, with {tracked:.0f} msg/s: "
          f"ratio {tracked / without:.3f}")


if __name__ == "__main__":
    main()
