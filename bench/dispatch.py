"""Dispatch benchmark: N subscribers through a real Celery worker pool into Postfix's smtp-sink.

    .venv/bin/python bench/dispatch.py [--subscribers 20000] [--workers 2] [--topics 20]
    .venv/bin/python bench/dispatch.py --topics 20 --languages 3

Prints messages per second, peak RSS per worker process, and the ceiling that
Postfix's own smtp-source reaches into the same sink with same-size messages.
With ``--topics N``: N topics, and two sends in the same run, readers spread over
100 topic sets (100 copies to render), then every reader in one topic set; prints
both throughputs and their ratio (the personal digests' cost).
With ``--languages L`` too (after an uncounted warm-up send): readers in 20 topic sets,
one send with readers spread over L languages (L x 20 copies, each rendered in its
language), then one with every reader in the default language; prints both
throughputs and their ratio. Languages beyond en and fr get a copy of the French
catalogue for the run (removed after).
Needs Debian's postfix package (smtp-sink, smtp-source); installs it with
apt-get when run as root. Uses an embedded Redis and a SQLite file unless
NEWSLETTER_BENCH_REDIS_URL / NEWSLETTER_BENCH_DATABASE_URL are set.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import add_bench_articles, fresh_schema, scratch_services  # noqa: E402

from newsletter.devstack import free_port, wait_for_port  # noqa: E402


def ensure_postfix_tools() -> None:
    if shutil.which("smtp-sink", path="/usr/sbin:/usr/bin"):
        return
    if os.geteuid() != 0:
        sys.exit("needs Postfix's smtp-sink: sudo apt-get install postfix")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def start_sink(port: int) -> subprocess.Popen:
    command = ["/usr/sbin/smtp-sink", "-c"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    process = subprocess.Popen([*command, f"127.0.0.1:{port}", "1024"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used: unlike wall time, barely moved by other
    load on a shared machine, so before/after comparisons hold there."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def pool_processes(worker: subprocess.Popen) -> list[int]:
    """The processes that send: the prefork pool's children once they have all started
    (counted before, the clock would miss one), or the solo worker itself."""
    if worker.args[-1] == "solo":
        return [worker.pid]
    deadline = time.monotonic() + 60
    while len(found := children(worker.pid)) < worker.pool_size:
        if time.monotonic() > deadline:
            sys.exit(f"the worker pool did not start: {len(found)} of {worker.pool_size}")
        time.sleep(0.2)
    return found


TOPIC_SETS = 100


def topic_sets(topics: int, count: int) -> list[list[str]]:
    """``count`` distinct sets of two topic slugs (fewer when N is small), reproducibly."""
    pairs = [[f"topic-{a}", f"topic-{b}"] for a in range(topics) for b in range(a + 1, topics)]
    random.Random(12).shuffle(pairs)
    return pairs[:count] or [["topic-0"]]


def publish_topic_articles(topics: int, round_name: str) -> None:
    """Topics made on first use; two new articles per topic, each in two topics, so the
    copies of a send hold four or so articles each (comparable from set to set)."""
    from newsletter.content import articles
    from newsletter.content import topics as topic_service
    from newsletter.db import unit_of_work
    from newsletter.models import ArticleSource

    with unit_of_work():
        for n in range(topics):
            if topic_service.get_topic(f"topic-{n}") is None:
                topic_service.create_topic(f"topic-{n}", f"Topic {n}", categories=[f"Cat {n}"])
    for n in range(2 * topics):
        with unit_of_work():
            articles.add_article(articles.ArticleInput(
                title=f"{round_name.title()} story {n} about the week's diplomacy",
                url=f"https://news.example.com/{round_name}-{n}", summary="Ministers met; " * 20,
                categories=[f"Cat {n % topics}", f"Cat {(n * 7 + 3) % topics}"],
                published_at=datetime.now(UTC)), ArticleSource.IMPORT)


def choose_topics(subscribers: int, sets: list[list[str]]) -> None:
    """Reader i reads the topics of set i mod len(sets)."""
    from sqlalchemy import delete, insert, select

    from newsletter.extensions import db
    from newsletter.models import Subscriber, Topic, subscriber_topics

    ids = dict(db.session.execute(select(Topic.slug, Topic.id)).all())
    db.session.execute(delete(subscriber_topics))
    readers = db.session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
    rows = [{"subscriber_id": reader, "topic_id": ids[slug]}
            for n, reader in enumerate(readers) for slug in sets[n % len(sets)]]
    for start in range(0, len(rows), 10_000):
        db.session.execute(insert(subscriber_topics), rows[start:start + 10_000])
    db.session.commit()


LANGUAGE_SETS = 20  # topic sets in the languages comparison
EXTRA_LANGUAGES = ("de", "es", "it", "nl", "pt")  # bench-only catalogues, copies of fr's


def bench_languages(count: int) -> tuple[list[str], list[Path]]:
    """``count`` language codes (en, fr, then copies of the French catalogue made for the
    run) and the folders made, to remove afterwards."""
    translations = ROOT / "newsletter" / "translations"
    made = []
    for code in EXTRA_LANGUAGES[:max(0, count - 2)]:
        folder = translations / code
        if not folder.exists():
            shutil.copytree(translations / "fr", folder)
            made.append(folder)
    return ["en", "fr", *EXTRA_LANGUAGES][:count], made


def choose_languages(languages: list[str | None]) -> None:
    """Reader i reads language i mod len(languages) (None: the default)."""
    from sqlalchemy import update

    from newsletter.extensions import db
    from newsletter.models import Subscriber

    for n, language in enumerate(languages):
        db.session.execute(update(Subscriber).where(Subscriber.id % len(languages) == n)
                           .values(language=language))
    db.session.commit()


PROGRESS_EVERY = 50_000  # messages between the rolling figures of a long send
PROGRESS_POLL = 5.0  # seconds between counts of the sent rows


def current_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Progress:
    """Every PROGRESS_EVERY messages of a send: the rate and the workers' CPU per message
    since the last line, and each worker's RSS now, printed at once, so a long run's
    figures at depth are on record even if it is cut short."""

    def __init__(self, pool: list[int], started: float):
        self.pool, self.mark = pool, PROGRESS_EVERY
        self.last = (0, started, self.cpu())

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pool)

    def update(self, sent: int) -> None:
        if sent < self.mark:
            return
        now, cpu = time.perf_counter(), self.cpu()
        last_sent, last_time, last_cpu = self.last
        done = max(sent - last_sent, 1)
        rss = ", ".join(f"{current_rss_kib(pid) / 1024:.0f}" for pid in self.pool)
        print(f"  at {sent:>9,} sent: {done / (now - last_time):6.0f} msg/s since "
              f"{last_sent:,}, {(cpu - last_cpu) / done * 1000:.2f} ms CPU/msg, "
              f"worker RSS {rss} MiB", flush=True)
        self.last = (sent, now, cpu)
        self.mark = (sent // PROGRESS_EVERY + 1) * PROGRESS_EVERY


def timed_send(app, worker, subscribers: int) -> dict:
    """Send everything new to everyone and wait until the issue is sent."""
    from sqlalchemy import func, select

    from newsletter.db import unit_of_work
    from newsletter.extensions import db
    from newsletter.issues import digests
    from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus, DigestVariant

    pool = pool_processes(worker)
    cpu_before = {pid: cpu_seconds(pid) for pid in pool}
    with app.app_context():
        started = time.perf_counter()
        with unit_of_work():
            digest = digests.send_now()
        ledger = time.perf_counter() - started
        progress, counted = Progress(pool, time.perf_counter()), time.perf_counter()
        while db.session.get(Digest, digest.id).status != DigestStatus.SENT:
            db.session.expire_all()
            time.sleep(0.2)
            if subscribers >= 2 * PROGRESS_EVERY and time.perf_counter() - counted > PROGRESS_POLL:
                counted = time.perf_counter()
                progress.update(db.session.scalar(select(func.count()).where(
                    Delivery.digest_id == digest.id, Delivery.status == DeliveryStatus.SENT)))
                db.session.commit()
        elapsed = time.perf_counter() - started
        counts = digests.progress(digest.id)
        variant = db.session.scalar(select(DigestVariant).where(
            DigestVariant.digest_id == digest.id).order_by(DigestVariant.id))
        sample = digests.render(digest, "https://news.example.com/unsubscribe/x",
                                variant=variant)
        variants = db.session.scalar(select(func.count()).where(
            DigestVariant.digest_id == digest.id))
    per_worker = {pid: cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    cpu = sum(per_worker.values())
    return {"rate": counts["sent"] / elapsed, "counts": counts, "elapsed": elapsed, "cpu": cpu,
            "per_worker": per_worker,
            "ledger": ledger, "variants": variants,
            "size": len(sample.html.encode()) + len(sample.text.encode())}


def seed_readers(count: int) -> None:
    """``count`` active readers: one INSERT ... SELECT generate_series on PostgreSQL
    (a million in seconds), chunks of 10,000 elsewhere."""
    from sqlalchemy import insert, text

    from newsletter.extensions import db
    from newsletter.models import Subscriber

    if db.engine.dialect.name == "postgresql":
        # The columns the model fills in Python get the same kind of values here.
        db.session.execute(text("""
            INSERT INTO subscribers (email, email_normalized, name, status, token_nonce,
                                     unsubscribe_key, created_at, updated_at, cadence)
            SELECT 'reader' || n || '@example.com', 'reader' || n || '@example.com',
                   'Reader ' || n, 'active', substr(md5(random()::text), 1, 16),
                   md5(n::text || random()::text), now(), now(), 'weekly'
            FROM generate_series(0, :count - 1) AS n"""), {"count": count})
        db.session.execute(text("ANALYZE subscribers"))
        db.session.commit()
        return
    for start in range(0, count, 10_000):
        db.session.execute(insert(Subscriber), [
            {"email": f"reader{n}@example.com", "email_normalized":
             f"reader{n}@example.com", "status": "active", "name": f"Reader {n}"}
            for n in range(start, min(start + 10_000, count))])
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="worker pool processes")
    parser.add_argument("--batch", type=int, default=100, help="deliveries per task")
    parser.add_argument("--topics", type=int, default=0,
                        help="topics; readers spread over TOPIC_SETS sets of two of them")
    parser.add_argument("--profile", metavar="FILE",
                        help="one worker process (solo pool) under cProfile, stats to FILE")
    parser.add_argument("--ceiling-messages", type=int, default=100_000,
                        help="at most this many messages for the smtp-source ceiling")
    parser.add_argument("--languages", type=int, default=1,
                        help="with --topics: compare one language with this many")
    args = parser.parse_args()
    if args.languages > 1 and not args.topics:
        parser.error("--languages needs --topics")
    ensure_postfix_tools()
    languages, made_catalogues = bench_languages(args.languages)

    scratch, helpers, redis_url, database_url = scratch_services("bench-dispatch-")
    sink_port = free_port()
    helpers.append(start_sink(sink_port))
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url,
           "NEWSLETTER_REDIS_URL": redis_url, "NEWSLETTER_SMTP_HOST": "127.0.0.1",
           "NEWSLETTER_SMTP_PORT": str(sink_port), "NEWSLETTER_SECRET_KEY": "bench-" * 8,
           "NEWSLETTER_SUPPRESSION_KEY": "pepper-" * 8,
           "NEWSLETTER_BASE_URL": "https://news.example.com",
           "NEWSLETTER_MAIL_FROM": "The Bench Daily <news@example.com>",
           "NEWSLETTER_SEND_BATCH_SIZE": str(args.batch),
           "NEWSLETTER_TASK_QUEUE": "bench", "NEWSLETTER_LANGUAGES": ",".join(languages)}
    os.environ.update(env)
    worker = None
    try:
        from newsletter import create_app
        from newsletter.extensions import db

        app = create_app()
        with app.app_context():
            fresh_schema(db)
            seed_readers(args.subscribers)
            add_bench_articles()

        pool = ["--pool", "prefork", "--concurrency", str(args.workers)]
        if args.profile:
            pool = ["--pool", "solo"]
        celery = ([str(ROOT / "bench" / "profiled_worker.py"), args.profile] if args.profile
                  else ["-m", "celery"])
        worker = subprocess.Popen(
            [sys.executable, *celery, "-A", "workers.celery_app", "worker",
             "--loglevel", "WARNING", *pool],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker.pool_size = 1 if args.profile else args.workers
        time.sleep(4)  # let the pool start before the clock does

        if args.languages > 1:
            # A send of the sample issue first, not counted: the pool warms up, and the two
            # sends compared carry the same kind of articles (two per topic).
            timed_send(app, worker, args.subscribers)
            # The languages first: whatever warming up is left counts against them.
            with app.app_context():
                sets = topic_sets(args.topics, LANGUAGE_SETS)
                publish_topic_articles(args.topics, "languages")
                choose_topics(args.subscribers, sets)
                choose_languages([*languages])
            spread = timed_send(app, worker, args.subscribers)
            with app.app_context():
                publish_topic_articles(args.topics, "one-language")
                choose_languages([None])
        elif args.topics:
            # The spread first: whatever warming up is left counts against it.
            with app.app_context():
                spread_sets = topic_sets(args.topics, TOPIC_SETS)
                publish_topic_articles(args.topics, "spread")
                choose_topics(args.subscribers, spread_sets)
            spread = timed_send(app, worker, args.subscribers)
            with app.app_context():
                publish_topic_articles(args.topics, "single")
                choose_topics(args.subscribers, spread_sets[:1])
        single = timed_send(app, worker, args.subscribers)
        rate, counts, elapsed, cpu, size = (single[key] for key in
                                            ("rate", "counts", "elapsed", "cpu", "size"))
        rss = {pid: peak_rss_kib(pid) for pid in pool_processes(worker)}

        message_bytes = int(size * 4 / 3) + 1500  # base64 parts plus headers
        ceiling_messages = min(args.subscribers, args.ceiling_messages)
        source = ["/usr/sbin/smtp-source", "-s", "4", "-l", str(message_bytes),
                  "-m", str(ceiling_messages), "-f", "news@example.com", "-t",
                  "reader@example.com", f"127.0.0.1:{sink_port}"]
        ceiling_started = time.perf_counter()
        subprocess.run(source, check=True, stdout=subprocess.DEVNULL)
        ceiling = ceiling_messages / (time.perf_counter() - ceiling_started)

        print(f"subscribers            {args.subscribers}")
        print(f"database               {database_url.split(':')[0]}")
        print(f"sent / failed          {counts['sent']} / {counts['failed']}")
        print(f"message size           ~{message_bytes} bytes")
        print(f"elapsed                {elapsed:.1f} s")
        print(f"throughput             {rate:.0f} msg/s")
        print(f"worker CPU per message {cpu / max(counts['sent'], 1) * 1000:.3f} ms "
              "(pool processes; steady under other load)")
        sent = max(counts["sent"], 1)
        print("CPU/msg per worker     " + ", ".join(
            f"{seconds / sent * len(single['per_worker']) * 1000:.2f} ms"
            for seconds in single["per_worker"].values()) + " (each worker's CPU over its share)")
        print("peak RSS per worker    " + ", ".join(f"{kib / 1024:.0f} MiB" for kib in
                                                     rss.values()))
        print(f"smtp-source ceiling    {ceiling:.0f} msg/s (4 sessions, same size)")
        print(f"ratio                  {rate / ceiling:.2f}")
        if args.languages > 1:
            sent = spread["counts"]["sent"]
            print(f"languages              {args.languages} ({', '.join(languages)}) x "
                  f"{len(sets)} topic sets ({spread['variants']} distinct copies)")
            print(f"  {args.languages} languages          {spread['rate']:.0f} msg/s, sent {sent}, "
                  f"{spread['cpu'] / max(sent, 1) * 1000:.2f} ms CPU/msg")
            print(f"  one language         {rate:.0f} msg/s, sent {counts['sent']} "
                  f"({single['variants']} distinct copies), "
                  f"{cpu / max(counts['sent'], 1) * 1000:.2f} ms CPU/msg")
            print(f"  languages / one      {spread['rate'] / rate:.2f} (must be >= 0.90)")
        elif args.topics:
            sent = spread["counts"]["sent"]
            print(f"topics                 {args.topics}, readers in {len(spread_sets)} topic "
                  f"sets ({spread['variants']} distinct copies)")
            print(f"  spread over sets     {spread['rate']:.0f} msg/s, sent {sent}, ledger "
                  f"written in {spread['ledger']:.1f} s, "
                  f"{spread['cpu'] / max(sent, 1) * 1000:.2f} ms CPU/msg")
            print(f"  one topic set        {rate:.0f} msg/s, sent {counts['sent']}, ledger "
                  f"written in {single['ledger']:.1f} s, "
                  f"{cpu / max(counts['sent'], 1) * 1000:.2f} ms CPU/msg")
            print(f"  spread / single      {spread['rate'] / rate:.2f} (must be >= 0.90)")
    finally:
        if worker:
            worker.terminate()
            worker.wait(timeout=30)
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
        for folder in made_catalogues:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
