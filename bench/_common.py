"""What the benches share: their scratch services and a freshly migrated database.

Imported as ``_common`` by the scripts beside it (run as ``python bench/NAME.py``, their
folder is first on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from newsletter.devstack import free_port, start_embedded_redis


def scratch_services(prefix: str) -> tuple[Path, list[subprocess.Popen], str, str]:
    """A scratch folder, the processes started for the bench (to stop after), and the
    Redis and database URLs: NEWSLETTER_BENCH_REDIS_URL or an embedded Redis,
    NEWSLETTER_BENCH_DATABASE_URL or a SQLite file in the folder."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    helpers: list[subprocess.Popen] = []
    redis_url = os.environ.get("NEWSLETTER_BENCH_REDIS_URL")
    if not redis_url:
        port = free_port()
        helpers.append(start_embedded_redis(scratch / "redis", port))
        redis_url = f"redis://127.0.0.1:{port}/0"
    database_url = (os.environ.get("NEWSLETTER_BENCH_DATABASE_URL")
                    or f"sqlite:///{scratch / 'bench.db'}")
    return scratch, helpers, redis_url, database_url


def fresh_schema(db) -> None:
    """Drop every table of the bench's database and migrate it to the head (in an app
    context): a bench database is the bench's own."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    db.drop_all()
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade()


SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / \
    "us-secretary-of-state-c5-plus-1.txt"


def add_bench_articles() -> None:
    """The issue the send benches mail: eight articles, the first a real news page's text
    (in an app context)."""
    from newsletter.content import article_files, articles
    from newsletter.db import unit_of_work
    from newsletter.models import ArticleSource

    for n in range(8):
        data = (article_files.read_article_file(SAMPLE, "https://news.example.com/a")
                if n == 0 else articles.ArticleInput(
                    title=f"Story number {n} about the week's diplomacy",
                    url=f"https://news.example.com/story-{n}",
                    summary="Ministers met; " * 20, categories=["News", "World"][n % 2:]))
        data.published_at = datetime.now(UTC)
        with unit_of_work():
            articles.add_article(data, ArticleSource.IMPORT)
