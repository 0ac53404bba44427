"""The dashboard: readers, growth, recent and failing issues, what comes next."""

from __future__ import annotations

from flask import current_app, render_template

from newsletter.issues import digests, reports
from newsletter.issues.schedule import parse_schedule
from newsletter.models import Role
from newsletter.web.admin.access import allow, bp


@bp.get("/")
@allow(Role.EDITOR)
def dashboard():
    return render_template(
        "admin/dashboard.html",
        by_status=reports.subscribers_by_status(),
        growth=reports.weekly_growth(),
        issues=reports.recent_issues(5),
        failing=reports.issues_with_failures(),
        upcoming=digests.new_articles(),
        scheduled=digests.scheduled(),
        schedule=parse_schedule(current_app.config["DIGEST_SCHEDULE"]),
    )
