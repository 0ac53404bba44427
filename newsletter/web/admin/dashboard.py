"""The dashboard: readers, growth, recent and failing issues, what comes next."""

from __future__ import annotations

from flask import current_app, render_template

from newsletter.analytics import reports as click_reports
from newsletter.issues import digests, reports
from newsletter.issues.schedule import parse_schedule
from newsletter.models import Role
from newsletter.web.admin.access import allow, bp


@bp.get("/")
@allow(Role.EDITOR)
def dashboard():
    issues = reports.recent_issues(5)
    return render_template(
        "admin/dashboard.html",
        by_status=reports.subscribers_by_status(),
        growth=reports.weekly_growth(),
        issues=issues,
        click_rates=click_reports.click_rates([report.digest.id for report in issues]),
        failing=reports.issues_with_failures(),
        upcoming=digests.new_articles(),
        scheduled=digests.scheduled(),
        schedule=parse_schedule(current_app.config["DIGEST_SCHEDULE"]),
    )
