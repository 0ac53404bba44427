"""Topics in the editor workspace: create, edit, reorder, delete, make them from the
articles' categories; reader counts per topic and per cadence. Every change is audited."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from newsletter.content import topics
from newsletter.content.topics import TopicError
from newsletter.extensions import db
from newsletter.issues import copies
from newsletter.models import Role, Topic
from newsletter.web.admin.access import allow, audit_action, bp

PREFIX = "/topics"  # under the workspace's /admin


@bp.app_template_global()
def topic_reader_counts() -> dict:
    """For the dashboard and the topic page: active readers per topic id and cadence."""
    per_topic = topics.reader_counts()
    return {"cadence": topics.readers_by_cadence(),
            "topics": [(topic, per_topic.get(topic.id, 0)) for topic in topics.list_topics()]}


@bp.app_template_global()
def issue_topic_sets(digest_id: int) -> list[tuple[list[str], dict[str, int]]]:
    """For the issue report: its rows by the readers' topic set, counted by status."""
    return copies.delivered_by_topic_set(digest_id)


def _lines(field: str) -> list[str]:
    return [line for line in request.form.get(field, "").splitlines() if line.strip()]


def _refused(error: TopicError, topic: Topic | None = None):
    flash(str(error), "error")
    return render_template("admin/topics.html", **_page(topic, form=request.form)), 400


def _page(editing: Topic | None = None, form=None) -> dict:
    return {"editing": editing, "form": form or {},
            "unmapped": topics.unmapped_categories()}


@bp.get(PREFIX + "/")
@allow(Role.EDITOR)
def topics_page():
    return render_template("admin/topics.html", **_page())


@bp.post(PREFIX + "/")
@allow(Role.EDITOR)
def topic_create():
    form = request.form
    try:
        if not form.get("name", "").strip():
            raise TopicError("A topic needs a name.")  # before its slug, made from the name
        topic = topics.create_topic(
            form.get("slug") or topics.slugify(form.get("name", "")), form.get("name", ""),
            description=form.get("description", ""), categories=_lines("categories"),
            feeds=_lines("feeds"))
    except TopicError as error:
        db.session.rollback()
        return _refused(error)
    audit_action("topic_create", target=f"topic {topic.slug}")
    flash(f"Topic {topic.name!r} created.", "ok")
    return redirect(url_for("admin.topics_page"))


@bp.route(PREFIX + "/<int:topic_id>", methods=["GET", "POST"])
@allow(Role.EDITOR)
def topic_edit(topic_id: int):
    topic = db.session.get(Topic, topic_id) or abort(404)
    if request.method == "GET":
        return render_template("admin/topics.html", **_page(topic))
    try:
        topics.update_topic(topic_id, name=request.form.get("name", ""),
                            description=request.form.get("description", ""),
                            categories=_lines("categories"), feeds=_lines("feeds"))
    except TopicError as error:
        db.session.rollback()
        return _refused(error, db.session.get(Topic, topic_id))
    audit_action("topic_update", target=f"topic {topic.slug}")
    flash("Topic saved; its articles were refiled.", "ok")
    return redirect(url_for("admin.topics_page"))


@bp.post(PREFIX + "/<int:topic_id>/<any(up, down):direction>")
@allow(Role.EDITOR)
def topic_move(topic_id: int, direction: str):
    try:
        topics.move_topic(topic_id, -1 if direction == "up" else 1)
    except TopicError:
        abort(404)
    audit_action("topic_move", target=f"topic {topic_id}", detail=direction)
    return redirect(url_for("admin.topics_page"))


@bp.post(PREFIX + "/<int:topic_id>/delete")
@allow(Role.EDITOR)
def topic_delete(topic_id: int):
    topic = db.session.get(Topic, topic_id) or abort(404)
    slug = topic.slug
    try:
        topics.delete_topic(topic_id)
    except TopicError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("admin.topics_page"))
    audit_action("topic_delete", target=f"topic {slug}")
    flash(f"Topic {slug!r} deleted.", "ok")
    return redirect(url_for("admin.topics_page"))


@bp.post(PREFIX + "/from-categories")
@allow(Role.EDITOR)
def topics_from_categories():
    created = topics.topics_from_categories()
    audit_action("topic_create", target="from categories",
                 detail=", ".join(topic.slug for topic in created) or "none")
    flash(f"{len(created)} topic(s) made from categories." if created
          else "Every category has a topic already.", "ok")
    return redirect(url_for("admin.topics_page"))
