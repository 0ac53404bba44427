"""Segments in the editor workspace: build one with a live count of its readers, list
and delete them. Every change is audited."""

from __future__ import annotations

from flask import flash, jsonify, redirect, render_template, request, url_for

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.models import ConsentSource, Role
from newsletter.readers import segments
from newsletter.web.admin.access import allow, bp, record_action

PREFIX = "/segments"  # under the workspace's /admin


def conditions_from_form(form) -> list[dict]:
    """The builder's fields as conditions: each filled field is one, ANDed."""
    conditions = []

    def add(field: str, op: str, name: str) -> None:
        value = form.get(name, "").strip()
        if value:
            conditions.append({"field": field, "op": op, "value": value})

    add("topic", "is", "topic")
    add("topic", "is_not", "not_topic")
    add("cadence", "is", "cadence")
    add("language", "is", "language")
    add("timezone", "is", "timezone")
    add("subscribed", "after", "subscribed_after")
    add("subscribed", "before", "subscribed_before")
    add("source", "is", "source")
    add("clicked", "within", "clicked_within")
    key = form.get("attribute_key", "").strip()
    if key:
        value = form.get("attribute_value", "").strip()
        conditions.append({"field": "attribute", "key": key, "op": "is", "value": value}
                          if value else {"field": "attribute", "key": key, "op": "exists"})
    return conditions


@bp.app_template_global()
def describe_segment(conditions: list[dict]) -> str:
    return segments.describe(conditions)


def _page(form=None, status: int = 200):
    rows = []
    for segment in segments.all_segments():
        try:
            readers: int | str = segments.segment_count(segment)
        except segments.SegmentError as error:
            readers = f"unusable: {error}"
        rows.append((segment, readers))
    return render_template("admin/segments.html", rows=rows, form=form or {},
                           topics=topics.list_topics(),
                           sources=[source.value for source in ConsentSource]), status


@bp.get(PREFIX + "/")
@allow(Role.EDITOR)
def segments_page():
    return _page()


@bp.post(PREFIX + "/count")
@allow(Role.EDITOR)
def segment_count():
    """The live count beside the builder: how many active readers the fields select now."""
    try:
        conditions = segments.check_conditions(conditions_from_form(request.form))
        return jsonify(count=segments.count(conditions),
                       description=segments.describe(conditions))
    except segments.SegmentError as error:
        return jsonify(error=str(error)), 400


@bp.post(PREFIX + "/")
@allow(Role.EDITOR)
def segment_create():
    try:
        with unit_of_work():
            segment = segments.create(request.form.get("name", ""),
                                      conditions_from_form(request.form))
            record_action("segment_create", target=f"segment {segment.id}",
                          detail=f"{segment.name}: {segments.describe(segment.conditions)}"[:500])
    except segments.SegmentError as error:
        flash(str(error), "error")
        return _page(request.form, 400)
    flash(f"Segment {segment.name} saved.", "ok")
    return redirect(url_for("admin.segments_page"))


@bp.post(PREFIX + "/<int:segment_id>/delete")
@allow(Role.EDITOR)
def segment_delete(segment_id: int):
    try:
        with unit_of_work():
            deleted = segments.delete(segment_id)
            if deleted:
                record_action("segment_delete", target=f"segment {segment_id}")
    except segments.SegmentError as error:
        flash(str(error), "error")
        return _page(status=409)
    flash("Segment deleted." if deleted else "There is no such segment.",
          "ok" if deleted else "error")
    return redirect(url_for("admin.segments_page"))
