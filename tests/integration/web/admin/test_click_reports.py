"""An issue's click report in the workspace: the page, its chart, the CSV; the dashboard's
click rates; old clicks folded into daily counts read the same."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from newsletter.analytics import reports, retention
from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Article, Click, ClickDay, Digest, utcnow
from tests.factories import add_article, add_clicks, make_editor, sent_issue
from tests.helpers import login
from workers.tasks import fold_old_clicks


def an_issue_with_clicks(app, days_ago: float = 0):
    article_id = add_article(app, title="=HYPERLINK(\"https://evil.example\")",
                             url="https://news.example.com/formula")
    digest_id, _ = sent_issue(app, [f"r{n}@example.com" for n in range(10)], days_ago)
    with app.app_context(), unit_of_work():
        digest = db.session.get(Digest, digest_id)
        digest.articles.append(db.session.get(Article, article_id))
        # Mid-morning, so every click falls on the day of sending.
        started = digest.started_at = digest.started_at.replace(hour=9, minute=0, second=0,
                                                                microsecond=0)
    add_clicks(app, digest_id,
               (article_id, 1, "human", started + timedelta(hours=1)),
               (article_id, 1, "human", started + timedelta(hours=2)),
               (article_id, 2, "human", started + timedelta(hours=2)),
               (article_id, 3, "bot", started + timedelta(seconds=40)),
               (article_id, 3, "bot", started + timedelta(seconds=40)))
    return digest_id, article_id


def test_the_report_page_the_csv_and_the_dashboard_show_people_apart_from_bots(app, client):
    make_editor(app)
    login(client)
    digest_id, _ = an_issue_with_clicks(app)
    page = client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert "<strong>3</strong> human clicks from <strong>2</strong>" in page
    assert "20.0%" in page and 'aria-label="Clicks per hour since sending"' in page
    exported = client.get(f"/admin/digests/{digest_id}/clicks.csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[1][:7] == ["issue", str(digest_id), "", "10", "3", "2", "2"]
    link_row = next(row for row in rows if row[0] == "link")
    assert link_row[1].startswith("'=")  # a title is never a spreadsheet formula
    # The article sat under "Europe" (its first category) in every delivered copy.
    assert ["topic section", "Europe", "", "10", "3", "2", "", ""] in rows
    assert "20.0%" in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/digests/999999/clicks.csv").status_code == 404


def test_old_clicks_fold_into_days_and_the_report_reads_the_same(app, client):
    digest_id, _ = an_issue_with_clicks(app, days_ago=200)
    with app.app_context():
        before = reports.issue_report(db.session.get(Digest, digest_id)).as_json()
        with unit_of_work():  # nothing is young enough to stay, nothing else is folded
            assert retention.fold_old_clicks(utcnow() - timedelta(days=30)) == 0
        fold_old_clicks()  # the beat job's task body
        assert db.session.query(Click).count() == 0
        assert db.session.query(ClickDay).count() >= 1
        after = reports.issue_report(db.session.get(Digest, digest_id)).as_json()
    assert after == before
    assert before["clicks"] == {"human": 3, "bot": 2, "unique_human_copies": 2}


def test_stats_issue_refuses_bad_ids_with_one_clear_line(app, client):
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["stats", "issue", "999999", "--json"])
    assert missing.exit_code == 1 and "no issue 999999" in missing.output
    for bad in ("abc", "0", "-1", str(2**40)):
        refused = runner.invoke(args=["stats", "issue", bad])
        assert refused.exit_code == 2 and "Traceback" not in refused.output, bad
    digest_id, _ = an_issue_with_clicks(app)
    readable = runner.invoke(args=["stats", "issue", str(digest_id)])
    assert readable.exit_code == 0
    assert "clicks: 3 human, 2 bot; 2 copies clicked by a person (20.0%)" in readable.output
