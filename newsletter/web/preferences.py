"""The reader's preference centre, reached from "Manage your topics" in every mail.

The link carries the reader's unsubscribe key, so it lives under /unsubscribe/<key>/
(a digest's footer builds it from the per-recipient unsubscribe URL). GET shows,
each change is a POST with the session's CSRF token, and bad input gets the page
again with the reason and a 400, having changed nothing.
"""

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext

from newsletter.content import topics
from newsletter.db import unit_of_work
from newsletter.mail.addresses import InvalidAddress
from newsletter.mail.language import N_
from newsletter.mail.tokens import TokenInvalid
from newsletter.models import ConsentSource, SubscriberStatus, utcnow
from newsletter.readers import preferences, sunset
from newsletter.web.common import (
    bad_link_page,
    reader_message,
    remember_reader_language,
    request_origin,
    subscribe_limit,
)

bp = Blueprint("preferences", __name__)
bp.url_value_preprocessor(remember_reader_language)  # the pages follow the reader's language
PAGE = "/unsubscribe/<token>/preferences"


def _page(token: str, *, error: str | None = None, notice: str | None = None, status=200):
    try:
        subscriber = preferences.reader_for_link(token)
    except TokenInvalid as error_:
        return bad_link_page(error_, "preferences")
    return render_template(
        "web/preferences.html", subscriber=subscriber, token=token, topics=topics.list_topics(),
        cadences=[cadence.value for cadence in topics.offered_cadences()],
        chosen={topic.slug for topic in subscriber.topics}, pause_weeks=preferences.PAUSE_WEEKS,
        paused=subscriber.paused_until is not None and subscriber.paused_until > utcnow(),
        sunset_paused=sunset.paused_by_sunset(subscriber),
        error=error, notice=notice), status


NOTICES = {
    "saved": N_("Your choices are saved."),
    "paused": N_("Mail is paused."),
    "resumed": N_("Mail is back on."),
    # The same words whether or not the address can be used: no one learns who reads us.
    "address": N_("If that address can receive our mail, a confirmation link is on its way to "
                  "it. Until you follow it, we keep writing to your current address."),
}


def _change(token: str, change, notice: str):
    """Run one change; its errors come back on the page as a 400."""
    try:
        with unit_of_work():
            change(request_origin(ConsentSource.LINK))
    except TokenInvalid as error:
        return bad_link_page(error, "preferences")
    except (preferences.PreferenceError, InvalidAddress) as error:
        return _page(token, error=reader_message(error), status=400)
    return redirect(url_for("preferences.page", token=token, notice=notice))


@bp.get(PAGE)
def page(token: str):
    notice = NOTICES.get(request.args.get("notice", ""))
    return _page(token, notice=gettext(notice) if notice else None)


@bp.post(PAGE)
def choices(token: str):
    return _change(token, lambda origin: preferences.update_choices(
        token, request.form.getlist("topics"), request.form.get("cadence"), origin), "saved")


@bp.post(PAGE + "/locale")
def locale(token: str):
    return _change(token, lambda origin: preferences.set_locale(
        token, request.form.get("timezone", "").strip(), request.form.get("language"), origin),
        "saved")


@bp.post(PAGE + "/name")
def name(token: str):
    return _change(token, lambda origin: preferences.rename(
        token, request.form.get("name"), origin), "saved")


@bp.post(PAGE + "/pause")
def pause(token: str):
    return _change(token, lambda origin: preferences.pause(
        token, request.form.get("weeks"), origin), "paused")


@bp.post(PAGE + "/resume")
def resume(token: str):
    return _change(token, lambda origin: preferences.resume(token, origin), "resumed")


@bp.post(PAGE + "/address")
@subscribe_limit  # the subscribe form's per-IP budget: both can mail a stranger
def address(token: str):
    return _change(token, lambda origin: preferences.request_address_change(
        token, request.form.get("email"), origin), "address")


@bp.get("/change-address/<token>")
def confirm_address(token: str):
    try:
        subscriber = preferences.reader_for_address_token(token)
    except TokenInvalid as error:
        return bad_link_page(error, "change_address")
    return render_template("web/change_address.html", subscriber=subscriber, token=token)


@bp.post("/change-address/<token>")
def confirm_address_post(token: str):
    try:
        with unit_of_work():
            subscriber = preferences.confirm_address_change(
                token, request_origin(ConsentSource.LINK))
    except TokenInvalid as error:
        return bad_link_page(error, "change_address")
    return render_template("web/change_address.html", subscriber=subscriber, done=True)


@bp.get("/undo-address/<key>")
def undo_address(key: str):
    """From the notice mailed to the old address: a page with one button."""
    try:
        change = preferences.change_to_undo(key)
    except TokenInvalid as error:
        return bad_link_page(error, "undo_address")
    return render_template("web/undo_address.html", change=change, key=key)


@bp.post("/undo-address/<key>")
def undo_address_post(key: str):
    try:
        with unit_of_work():
            subscriber = preferences.undo_address_change(key, request_origin(ConsentSource.LINK))
    except TokenInvalid as error:
        return bad_link_page(error, "undo_address")
    return render_template("web/undo_address.html", subscriber=subscriber,
                           token=subscriber.unsubscribe_key, done=True)


# "Keep me subscribed" from the sunset policy's re-engagement mail. Mail scanners
# fetch every link of a message, so the GET only shows a button; the POST keeps.
@bp.get("/keep/<token>")
def keep(token: str):
    try:
        subscriber = sunset.reader_for_keep_link(token)
    except TokenInvalid:
        abort(404)
    if subscriber.status != SubscriberStatus.ACTIVE:
        return render_template("web/keep.html", subscriber=subscriber, done=True, kept=False)
    return render_template("web/keep.html", subscriber=subscriber)


@bp.post("/keep/<token>")
def keep_post(token: str):
    try:
        with unit_of_work():
            subscriber = sunset.reader_for_keep_link(token)
            kept = sunset.keep(subscriber.id, request_origin(ConsentSource.LINK))
    except TokenInvalid:
        abort(404)
    return render_template("web/keep.html", subscriber=subscriber, done=True, kept=kept)
