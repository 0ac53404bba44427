"""Articles: the list, writing and editing one (with its topics and a live preview),
leaving one out of the next issue, and fetching the feeds now."""

from __future__ import annotations

from datetime import datetime

from flask import abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from newsletter import jobs
from newsletter.content import articles, topics
from newsletter.content.articles import ArticleInput, InvalidArticle
from newsletter.extensions import db
from newsletter.issues import reports
from newsletter.models import Article, ArticleSource, Role
from newsletter.queue import send_task_now
from newsletter.web.admin.access import allow, audit_action, bp, local_path
from newsletter.web.common import newsletter_zone
from newsletter.web.security import article_preview_document


@bp.get("/articles")
@allow(Role.AUTHOR)
def articles_page():
    query = request.args.get("q", "")[:254]  # as the search box's maxlength
    return render_template("admin/articles.html", query=query,
                           articles=reports.search_articles(query))


LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"  # the date and time fields, joined by a T


def _local_input(moment: datetime) -> str:
    return moment.astimezone(newsletter_zone()).strftime(LOCAL_INPUT_FORMAT)


def _published_at(value: str, article: Article | None) -> datetime | None:
    """The time typed in the newsletter's zone; None keeps it (now, for a new article).
    An untouched field keeps the stored time to the second."""
    value = value.strip()
    if not value or (article is not None and value == _local_input(article.published_at)):
        return None
    moment = datetime.fromisoformat(value)  # ValueError: the caller says what to type
    if not 1970 <= moment.year <= 9000:  # year 1 or 9999 would overflow on the way to UTC
        raise ValueError("year out of range")
    return moment if moment.tzinfo else moment.replace(tzinfo=newsletter_zone())


def _typed_published_at(form) -> str:
    """The date and time fields as one ISO value (the date alone: midnight); a client
    that posts ``published_at`` in one piece still may."""
    day, time = form.get("published_date", "").strip(), form.get("published_time", "").strip()
    if not (day or time):
        return form.get("published_at", "")
    return f"{day}T{time or '00:00'}"


def _article_form(article: Article | None) -> tuple[ArticleInput, list[str]]:
    """The form as an article, and the problems only the form can have."""
    form, problems = request.form, []
    try:
        published_at = _published_at(_typed_published_at(form), article)
    except ValueError:
        published_at = None
        problems.append("Give the publication time as a date (YYYY-MM-DD) and a 24-hour "
                        "time (HH:MM), e.g. 2026-11-28 and 14:34, or leave both empty.")
    body, is_markdown = form.get("body", ""), form.get("body_format") != "html"
    data = ArticleInput(
        title=form.get("title", ""), url=form.get("url", ""), summary=form.get("summary", ""),
        body_html="" if is_markdown else body, body_markdown=body if is_markdown else None,
        author=form.get("author") or None,
        categories=[c for c in form.get("categories", "").split(",") if c.strip()],
        published_at=published_at,
    )
    return data, problems


def _article_page(article: Article | None, problems: list[str] = ()):
    form = request.form if problems else None
    if form is not None:
        value = form.to_dict()
    elif article is not None:
        value = {"title": article.title, "url": article.url, "summary": article.summary,
                 "categories": ", ".join(article.categories), "author": article.author or "",
                 "published_date": _local_input(article.published_at)[:10],
                 "published_time": _local_input(article.published_at)[11:],
                 "body_format": "html" if article.body_markdown is None else "markdown",
                 "body": article.body_html if article.body_markdown is None
                 else article.body_markdown}
    else:
        value = {"body_format": "markdown"}
    return render_template("admin/article.html", article=article, value=value,
                           problems=problems, zone=newsletter_zone().key, limits=articles,
                           **_article_topics(article, request.form.getlist("topics")
                                             if form is not None else None)
                           ), 400 if problems else 200


@bp.route("/articles/new", methods=["GET", "POST"])
@bp.route("/articles/<int:article_id>/edit", methods=["GET", "POST"])
@allow(Role.AUTHOR)
def edit_article(article_id: int | None = None):
    article = db.session.get(Article, article_id) if article_id else None
    if article_id and article is None:
        abort(404)
    if request.method == "GET":
        return _article_page(article)
    data, problems = _article_form(article)
    chosen_topics = _topic_ids(request.form.getlist("topics"))
    if chosen_topics is None:
        problems.append("No such topic.")
    try:
        if problems:  # still check the rest, so every problem shows at once
            articles.validate(data)
            raise InvalidArticle()
        if article is None:
            added, created = articles.add_article(data, ArticleSource.EDITOR)
            if not created:
                raise InvalidArticle("An article with this URL exists already.")
            article_id = added.id
        else:
            articles.update_article(article.id, data)
        topics.set_manual_topics(article_id, chosen_topics)
    except InvalidArticle as error:
        return _article_page(article, problems + error.problems)
    audit_action("article_save", target=f"article {article_id}")
    flash("Article saved.", "ok")
    return redirect(url_for("admin.articles_page"))


def _article_topics(article: Article | None, posted: list[str] | None = None) -> dict:
    """The topic checkboxes: ticked where an editor put the article by hand (or, when
    the form comes back with an error, as they were sent)."""
    all_topics = topics.list_topics()
    if posted is not None:
        ticked = {topic.id for topic in all_topics if str(topic.id) in posted}
    else:
        ticked = topics.manual_topic_ids(article.id) if article else set()
    return {"all_topics": all_topics, "ticked_topics": ticked}


def _topic_ids(values: list[str]) -> list[int] | None:
    """The topics ticked on the article form; None when one is not a topic."""
    known = {str(topic.id): topic.id for topic in topics.list_topics()}
    if not all(value in known for value in values):
        return None
    return [known[value] for value in values]


PREVIEW_PAGE = Markup(
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Preview</title>'
    '<style>body{{margin:.5rem .9rem;font:15px/1.5 system-ui,sans-serif;color:#1d2433;'
    'overflow-wrap:anywhere}}img{{max-width:100%;height:auto}}pre{{white-space:pre-wrap}}'
    '.error{{color:#b42318}}</style></head><body>{}</body></html>')


@bp.post("/articles/preview")
@allow(Role.AUTHOR)
def preview_article():
    """The edit form's live preview: the body as it would be stored (sanitised), as a
    document for the form's frame. Its own policy lets https images show, which the
    workspace's pages do not; a body refused says why in the frame, with a 400."""
    body = request.form.get("body", "")
    problem = articles.body_too_big(body)
    if not problem:
        try:
            html = articles.render_body(body, request.form.get("body_format") != "html")
            return article_preview_document(PREVIEW_PAGE.format(Markup(html)))
        except InvalidArticle as error:
            problem = str(error)
    return article_preview_document(
        PREVIEW_PAGE.format(Markup('<p class="error">{}</p>').format(problem)), 400)


@bp.post("/articles/<int:article_id>/exclude")
@allow(Role.AUTHOR)
def exclude_article(article_id: int):
    exclude = request.form.get("exclude") == "1"
    if articles.set_excluded(article_id, exclude) is None:
        abort(404)
    audit_action("article_exclude" if exclude else "article_include",
                 target=f"article {article_id}")
    back = request.form.get("back")
    return redirect(local_path(back) if back else
                    url_for("admin.articles_page", q=request.args.get("q", "")))


@bp.post("/articles/fetch")
@allow(Role.AUTHOR)
def fetch_feeds():
    if send_task_now(jobs.POLL_FEEDS):
        flash("Fetching the feeds; new articles appear here in a moment.", "ok")
    else:
        flash("The task queue is unreachable; the feeds are fetched on the next schedule.",
              "error")
    return redirect(url_for("admin.articles_page"))
