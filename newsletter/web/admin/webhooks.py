"""Webhook endpoints (owners): add one, its delivery log, resend, enable, remove."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from newsletter.db import unit_of_work
from newsletter.models import Role
from newsletter.web.admin.access import allow, audit_action, bp, record_action
from newsletter.webhooks import deliveries, endpoints
from newsletter.webhooks.events import EVENT_TYPES


@bp.route("/webhooks", methods=["GET", "POST"])
@allow(Role.OWNER)
def webhooks_page():
    new_secret = None
    if request.method == "POST":
        form = request.form
        try:
            with unit_of_work():
                endpoint, new_secret = endpoints.add(
                    form.get("url", ""), form.getlist("event"),
                    form.get("secret", "").strip() or None)
                record_action("webhook_add", target=f"webhook {endpoint.id}", detail=endpoint.url)
        except endpoints.WebhookError as error:
            audit_action("webhook_add", outcome="failed", detail=str(error))
            flash(str(error), "error")
        else:
            flash(f"Endpoint {endpoint.id} added.", "ok")
    return render_template("admin/webhooks.html", endpoints=endpoints.list_all(),
                           event_types=EVENT_TYPES, new_secret=new_secret)


@bp.get("/webhooks/<int:endpoint_id>")
@allow(Role.OWNER)
def webhook_log(endpoint_id: int):
    endpoint = endpoints.get(endpoint_id)
    if endpoint is None:
        abort(404)
    return render_template("admin/webhook_log.html", endpoint=endpoint,
                           rows=deliveries.log(endpoint_id))


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/resend")
@allow(Role.OWNER)
def webhook_resend(endpoint_id: int, delivery_id: int):
    with unit_of_work():
        resent = deliveries.resend(delivery_id, endpoint_id)
        if resent:
            record_action("webhook_resend", target=f"webhook delivery {delivery_id}")
    flash("Queued again, with the same event id." if resent else
          "Not resent: it is on its way now, or the endpoint is disabled.",
          "ok" if resent else "error")
    return redirect(url_for("admin.webhook_log", endpoint_id=endpoint_id))


@bp.post("/webhooks/<int:endpoint_id>/enable")
@allow(Role.OWNER)
def webhook_enable(endpoint_id: int):
    with unit_of_work():
        enabled = endpoints.enable(endpoint_id)
        if enabled:
            record_action("webhook_enable", target=f"webhook {endpoint_id}")
    flash("Endpoint enabled: new events go to it; resend what it missed from its log."
          if enabled else "It was not disabled.", "ok" if enabled else "error")
    return redirect(url_for("admin.webhook_log", endpoint_id=endpoint_id))


@bp.post("/webhooks/<int:endpoint_id>/remove")
@allow(Role.OWNER)
def webhook_remove(endpoint_id: int):
    with unit_of_work():
        removed = endpoints.remove(endpoint_id)
        if removed:
            record_action("webhook_remove", target=f"webhook {endpoint_id}")
    flash("Endpoint removed." if removed else "No such endpoint.", "ok" if removed else "error")
    return redirect(url_for("admin.webhooks_page"))
