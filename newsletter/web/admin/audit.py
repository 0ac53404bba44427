"""The audit log page (owners): who did what, filtered and paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import render_template, request

from newsletter.editors import audit
from newsletter.models import Role
from newsletter.web.admin.access import allow, bp


def _date_arg(name: str):
    try:
        return datetime.fromisoformat(request.args.get(name, "")).replace(tzinfo=UTC)
    except ValueError:
        return None


@bp.get("/audit")
@allow(Role.OWNER)
def audit_page():
    page = request.args.get("page", "1")
    page_number = int(page) if page.isdigit() and len(page) < 7 else 1
    filters = {name: request.args.get(name, "")[:254] for name in ("actor", "action",
                                                                     "outcome")}
    until = _date_arg("until")
    events = audit.search(**filters, since=_date_arg("since"),
                          until=until + timedelta(days=1) if until else None,
                          page=page_number)
    return render_template("admin/audit.html", events=events, page=page_number,
                           actions=audit.actions(), page_size=audit.PAGE_SIZE,
                           since=request.args.get("since", ""),
                           until=request.args.get("until", ""), **filters)
