"""Per-topic archive pages and their Atom feeds, so a reader can follow one beat in a
feed reader."""

from flask import Blueprint, abort, render_template

from newsletter.content import topics
from newsletter.issues import archive

bp = Blueprint("topic_archive", __name__, url_prefix="/archive/topics")


def _topic_or_404(slug: str):
    return topics.get_topic(slug) or abort(404)


@bp.get("/")
def index():
    return render_template("web/archive_topics.html", topics=topics.list_topics())


@bp.get("/<slug>/")
def topic_page(slug: str):
    topic = _topic_or_404(slug)
    return render_template("web/archive_topic.html", topic=topic,
                           issues=archive.topic_issues(topic))


@bp.get("/<slug>/feed.atom")
def topic_feed(slug: str):
    topic = _topic_or_404(slug)
    issues = archive.topic_issues(topic)
    updated = max((digest.started_at for digest, _ in issues), default=topic.created_at)
    body = render_template("web/topic_feed.xml", topic=topic, issues=issues, updated=updated)
    return body, 200, {"Content-Type": "application/atom+xml; charset=utf-8"}
