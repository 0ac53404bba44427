"""Building a reader's message in one process, with and without click tracking.

    .venv/bin/python bench/message_build.py [--messages 20000] [--rounds 3] [--profile]

Renders the bench's usual issue (eight articles, one of them the sample) once per
setting, then builds ``--messages`` readers' messages with the send's own factory
(``BulkMessageFactory.build``), alternating tracked and untracked rounds; prints
the CPU per message (``time.process_time``) and the message size of each. Uses a
scratch SQLite database; no worker, relay or Redis traffic is involved.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import add_bench_articles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs")
    parser.add_argument("--profile", action="store_true",
                        help="print the top of a cProfile of one tracked round")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-build-"))
    os.environ.update({
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
        "NEWSLETTER_SECRET_KEY": "bench-" * 8, "NEWSLETTER_SUPPRESSION_KEY": "pepper-" * 8,
        "NEWSLETTER_BASE_URL": "https://news.example.com",
        "NEWSLETTER_MAIL_FROM": "The Bench Daily <news@example.com>"})

    from flask_migrate import upgrade

    from newsletter import create_app
    from newsletter.db import unit_of_work
    from newsletter.delivery import dispatch
    from newsletter.issues import digests

    app = create_app()
    with app.app_context(), app.test_request_context():
        upgrade()
        add_bench_articles()
        with unit_of_work():
            digest = digests.compose()
        url = "https://news.example.com/unsubscribe/" + "x" * 60

        def factory(track: bool):
            app.config["TRACK_CLICKS"] = track
            return dispatch._factory(digest, None)

        def run(track: bool) -> tuple[float, int]:
            made = factory(track)
            started = time.process_time()
            size = 0
            for n in range(1, args.messages + 1):
                size = len(made.build(n, f"reader{n}@example.com", f"Reader {n}", url))
            return (time.process_time() - started) / args.messages * 1e6, size

        run(True), run(False)  # warm: layouts made, caches filled
        with_, without = [], []
        for _ in range(args.rounds):
            with_.append(run(True))
            without.append(run(False))
        for name, results in (("tracked", with_), ("untracked", without)):
            print(f"{name:>9}: " + " / ".join(f"{us:.1f}" for us, _ in results)
                  + f" us CPU per message, {results[-1][1]:,} bytes")
        mean = [sum(us for us, _ in r) / len(r) for r in (with_, without)]
        print(f"tracking adds {mean[0] - mean[1]:.1f} us per message "
              f"({(mean[0] / mean[1] - 1) * 100:.0f} % of the build)")
        if args.profile:
            made = factory(True)
            profile = cProfile.Profile()
            profile.enable()
            for n in range(1, args.messages + 1):
                made.build(n, f"reader{n}@example.com", f"Reader {n}", url)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
